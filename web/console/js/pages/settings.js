// A location's settings: its name and group, how its user syncs are
// applied (automatic apply, safety threshold, force update of all
// records), who receives sync reports and how often it syncs; Force sync
// on next check-in; and a new panel credential. Owners and admins change
// them; everyone else reads them.

import {
  h, fill, field, busy, confirm, errorText, fieldErrors, timeEl, badge, pageHeader, errorBox,
  connectionLabel,
} from '../ui.js';
import { canAdminister } from './locations.js';
import { canAudit } from './runs.js';
import { showSecret } from './apikeys.js';

const maxReportEmails = 20;

export async function render(ctx) {
  const id = ctx.params.id;
  const path = `/v1/locations/${encodeURIComponent(id)}`;
  const body = h('div', {}, h('p', { class: 'loading', role: 'status' }, 'Loading…'));
  fill(ctx.main, pageHeader('Location settings'), body);

  let location;
  try {
    location = await ctx.client.get(path);
  } catch (err) {
    if (!ctx.current()) return;
    fill(body, err.status === 404
      ? h('div', { class: 'alert alert-bad', role: 'alert' }, h('p', {}, 'This location does not exist in this account. It may have been removed, or the link may be incomplete.'), h('p', {}, h('a', { href: '#/locations' }, 'Go to Locations')))
      : errorBox(err, () => ctx.app.route()));
    return;
  }
  if (!ctx.current()) return;
  new SettingsPage(ctx, path, body).show(location);
}

class SettingsPage {
  constructor(ctx, path, body) {
    this.ctx = ctx;
    this.path = path;
    this.body = body;
    this.admin = canAdminister(ctx.me);
  }

  show(location) {
    this.location = location;
    const h1 = this.ctx.main.querySelector('h1');
    const title = `Settings of ${location.name}`;
    if (h1) h1.textContent = title;
    document.title = `${title} · panelsync`;
    const links = h('p', { class: 'page-actions' },
      canAudit(this.ctx.me) ? h('a', { class: 'button', href: `#/audit?target_type=location&target_id=${encodeURIComponent(location.id)}` }, 'History') : null,
      h('a', { class: 'button', href: `#/runs?location=${encodeURIComponent(location.id)}` }, 'Sync runs'),
      h('a', { class: 'button', href: `#/events?location=${encodeURIComponent(location.id)}` }, 'Events'));
    fill(this.body,
      this.admin ? null : h('div', { class: 'alert alert-info' }, h('p', {}, 'You can read these settings. Only an owner or administrator of the account can change them.')),
      links,
      this.form(),
      this.forceSync(),
      this.credential());
  }

  form() {
    const l = this.location;
    const s = l.settings || {};
    const ro = !this.admin;
    const input = (props) => h('input', { ...props, disabled: ro });
    this.inputs = {
      name: input({ type: 'text', name: 'name', value: l.name, maxlength: '200', required: true }),
      group: input({ type: 'text', name: 'group', value: l.group || '', maxlength: '100' }),
      auto_apply: input({ type: 'checkbox', name: 'settings.auto_apply', checked: s.auto_apply }),
      force_update_all: input({ type: 'checkbox', name: 'settings.force_update_all', checked: s.force_update_all }),
      safety_threshold_percent: input({ type: 'number', name: 'settings.safety_threshold_percent', value: String(s.safety_threshold_percent ?? 20), min: '1', max: '100', step: '1', inputmode: 'numeric', class: 'narrow' }),
      safety_threshold_count: input({ type: 'number', name: 'settings.safety_threshold_count', value: String(s.safety_threshold_count ?? 0), min: '0', max: '100000', step: '1', inputmode: 'numeric', class: 'narrow' }),
      report_emails: h('textarea', { name: 'settings.report_emails', rows: '3', disabled: ro, autocomplete: 'off', spellcheck: 'false' }),
      sync_interval_minutes: input({ type: 'number', name: 'settings.sync_interval_minutes', value: String(s.sync_interval_minutes ?? 1440), min: '15', max: '43200', step: '1', inputmode: 'numeric', class: 'narrow' }),
    };
    const i = this.inputs;
    i.report_emails.value = (s.report_emails || []).join('\n');
    const every = h('p', { class: 'hint', 'aria-live': 'polite' });
    const showEvery = () => { every.textContent = intervalWords(Number(i.sync_interval_minutes.value)); };
    i.sync_interval_minutes.addEventListener('input', showEvery);
    showEvery();

    this.status = h('div', { class: 'outcome', role: 'status', 'aria-live': 'polite' });
    const save = this.admin ? h('button', { type: 'submit', class: 'primary' }, 'Save settings') : null;
    const form = h('form', { class: 'card settings-form', novalidate: true, 'aria-labelledby': 'settings-sync' },
      h('h2', { id: 'settings-sync' }, 'Location and sync'),
      h('div', { class: 'form-grid' },
        field('Name', i.name),
        field('Group', i.group, 'Locations of a group can be synced together. Leave empty for none.')),
      h('fieldset', { class: 'plain' },
        h('legend', {}, 'Applying changes'),
        field('Automatic apply', i.auto_apply, 'On: a user sync or import that stays within the safety threshold is applied at once. Off: every change waits for someone to Apply it.'),
        h('div', { class: 'form-grid' },
          field('Safety threshold (percent)', i.safety_threshold_percent, 'A sync that would update or remove more than this share of the users on record is held for someone to Apply. 1 to 100.'),
          field('Safety threshold (number of users)', i.safety_threshold_count, 'A sync that would add, update and remove more users than this in all is held too. 0 sets no limit.')),
        field('Force update of all records', i.force_update_all, 'Every sync re-checks every user rather than only what changed since the last one, and an import writes every user it lists to the panel.')),
      h('div', { class: 'form-grid' },
        h('div', {}, field('Sync interval (minutes)', i.sync_interval_minutes, 'How often the users sync on their own: 15 minutes to 30 days (43200). 1440 is once a day.'), every),
        field('Report e-mails', i.report_emails, `Who receives the outcome of each user sync and import, one address a line; at most ${maxReportEmails}.`)),
      this.status,
      save ? h('div', { class: 'form-actions' }, save) : null);
    form.addEventListener('submit', (ev) => {
      ev.preventDefault();
      if (save) busy(save, () => this.save(form));
    });
    this.formEl = form;
    return form;
  }

  // changes answers the PATCH body with only what differs from the
  // location as loaded, or the problems found before sending.
  changes() {
    const l = this.location;
    const s = l.settings || {};
    const i = this.inputs;
    const problems = [];
    const out = {};
    const settings = {};
    const name = i.name.value.trim();
    if (!name) problems.push({ field: 'name', message: 'Give the location a name.' });
    else if (name !== l.name) out.name = name;
    const group = i.group.value.trim();
    if (group !== (l.group || '')) out.group = group;
    if (i.auto_apply.checked !== s.auto_apply) settings.auto_apply = i.auto_apply.checked;
    if (i.force_update_all.checked !== s.force_update_all) settings.force_update_all = i.force_update_all.checked;
    const num = (key, min, max, message) => {
      const raw = i[key].value.trim();
      const v = Number(raw);
      if (raw === '' || !Number.isInteger(v) || v < min || v > max) {
        problems.push({ field: `settings.${key}`, message });
        return;
      }
      if (v !== s[key]) settings[key] = v;
    };
    num('safety_threshold_percent', 1, 100, 'Enter a whole number from 1 to 100.');
    num('safety_threshold_count', 0, 100000, 'Enter a whole number from 0 (no limit) to 100000.');
    num('sync_interval_minutes', 15, 43200, 'Enter a whole number of minutes from 15 to 43200 (30 days).');
    const emails = i.report_emails.value.split(/[\s,;]+/).map((e) => e.trim().toLowerCase()).filter(Boolean);
    const unique = [...new Set(emails)];
    const bad = unique.find((e) => !/^[^@\s]+@[^@\s]+\.[^@\s]+$/.test(e));
    if (bad) problems.push({ field: 'settings.report_emails', message: `"${bad}" is not an e-mail address.` });
    else if (unique.length > maxReportEmails) problems.push({ field: 'settings.report_emails', message: `At most ${maxReportEmails} addresses; remove ${unique.length - maxReportEmails}.` });
    else if (unique.join('\n') !== (s.report_emails || []).join('\n')) settings.report_emails = unique;
    if (Object.keys(settings).length) out.settings = settings;
    return { body: out, problems };
  }

  async save(form) {
    fill(this.status);
    fieldErrors(form, null);
    const { body, problems } = this.changes();
    if (problems.length) {
      fieldErrors(form, { problem: { errors: problems } });
      form.querySelector('[aria-invalid="true"]')?.focus();
      fill(this.status, h('p', { class: 'alert alert-bad' }, 'Some settings need correcting; see the messages next to them.'));
      return;
    }
    if (!Object.keys(body).length) {
      fill(this.status, h('p', { class: 'alert alert-info' }, 'Nothing has changed, so there was nothing to save.'));
      return;
    }
    let fresh;
    try {
      fresh = await this.ctx.client.patch(this.path, body);
    } catch (err) {
      if (!this.ctx.current()) return;
      const placed = fieldErrors(form, err);
      fill(this.status, h('p', { class: 'alert alert-bad' }, placed ? 'Some settings need correcting; see the messages next to them. Nothing was saved.' : errorText(err)));
      form.querySelector('[aria-invalid="true"]')?.focus();
      return;
    }
    if (!this.ctx.current()) return;
    this.show(fresh);
    fill(this.status, h('p', { class: 'alert alert-good' }, savedText(body)));
  }

  // forceSync is the section of the forced sync; said is an outcome to
  // show in it.
  forceSync(said) {
    const l = this.location;
    const pending = l.sync?.force_pending;
    const status = h('div', { class: 'outcome', role: 'status', 'aria-live': 'polite' }, said);
    let section;
    const force = async () => {
      let res;
      try {
        res = await this.ctx.client.post(`${this.path}/force-sync`);
      } catch (err) {
        fill(status, h('p', { class: 'alert alert-bad' }, errorText(err)));
        return;
      }
      const text = `${res.message || 'Users will sync on next check-in'}.`;
      const fresh = await this.ctx.client.get(this.path).catch(() => null);
      if (!this.ctx.current()) return;
      if (fresh) this.location = { ...this.location, sync: fresh.sync, panel: fresh.panel };
      else this.location = { ...this.location, sync: { ...this.location.sync, force_pending: true } };
      section.replaceWith(this.forceSync(h('p', { class: 'alert alert-good' }, text)));
    };
    section = h('section', { class: 'card', 'aria-labelledby': 'settings-force' },
      h('h2', { id: 'settings-force' }, 'Sync on next check-in'),
      h('p', {}, pending
        ? 'A full user sync is waiting: it runs at the panel\'s next check-in and re-checks every user.'
        : 'When the panel next checks in, a full user sync can re-check every user instead of only what changed. Use it when the record and the panel seem to disagree.'),
      h('p', { class: 'muted small' }, 'Last user sync ', timeEl(l.sync?.users_synced_at), ' · panel last seen ', timeEl(l.panel?.last_seen_at)),
      status,
      this.admin && !pending
        ? h('div', { class: 'form-actions' }, h('button', { type: 'button', onclick: (ev) => busy(ev.currentTarget, force) }, 'Force sync on next check-in'))
        : null);
    return section;
  }

  // credential is the section of the panel's device credential; said is
  // an outcome to show in it.
  credential(said) {
    if (!this.admin) return null;
    const l = this.location;
    const conn = l.panel?.connection;
    const status = h('div', { class: 'outcome', role: 'status', 'aria-live': 'polite' }, said);
    let section;
    const rotate = async (button) => {
      const ok = await confirm({
        title: 'Issue a new panel credential?',
        message: h('div', {},
          h('p', {}, `The panel ${l.panel?.serial || ''} at ${l.name} gets a new secret. Its current secret stops working at once: the panel is disconnected and cannot reconnect until the installer enters the new secret in it.`),
          h('p', {}, 'Do this when a communicator is replaced, or when the secret may be known to someone who should not have it.')),
        confirmLabel: 'Issue new credential',
        danger: true,
      });
      if (!ok) return;
      let res;
      try {
        res = await busy(button, () => this.ctx.client.post(`${this.path}/panel/credential`));
      } catch (err) {
        fill(status, h('p', { class: 'alert alert-bad' }, errorText(err)));
        return;
      }
      await showSecret({
        title: 'The panel\'s new secret',
        intro: `Enter this secret in the panel ${l.panel?.serial || ''} at ${l.name} so that it can connect again.`,
        secret: res.device_secret,
        label: 'The panel\'s new secret',
      });
      if (!this.ctx.current()) return;
      if (res.location) this.location = { ...this.location, panel: res.location.panel, sync: res.location.sync };
      section.replaceWith(this.credential(h('p', { class: 'alert alert-good' },
        'A new credential was issued. The panel reconnects once the new secret is entered in it.')));
    };
    section = h('section', { class: 'card', 'aria-labelledby': 'settings-credential' },
      h('h2', { id: 'settings-credential' }, 'Panel credential'),
      h('p', {}, 'Panel ', h('span', { class: 'mono' }, l.panel?.serial || '—'), ' ',
        badge(connectionLabel[conn] || 'Unknown', conn === 'connected' ? 'good' : 'bad')),
      conn === 'authorization_expired'
        ? h('p', { class: 'alert alert-warn' }, 'The panel\'s authorization has expired, so it cannot connect. Issue a new credential and enter it in the panel.')
        : h('p', { class: 'hint' }, 'The panel proves who it is with a secret. Issue a new one when a communicator is replaced or its secret may have leaked.'),
      status,
      h('div', { class: 'form-actions' }, h('button', { type: 'button', onclick: (ev) => rotate(ev.currentTarget) }, 'Rotate panel credential…')));
    return section;
  }
}

// intervalWords says how often a number of minutes is.
function intervalWords(m) {
  if (!Number.isFinite(m) || m <= 0) return '';
  if (m % 1440 === 0) return m === 1440 ? 'Once a day.' : `Every ${m / 1440} days.`;
  if (m % 60 === 0) return m === 60 ? 'Every hour.' : `Every ${m / 60} hours.`;
  if (m > 60) return `Every ${Math.floor(m / 60)} h ${m % 60} min.`;
  return `Every ${m} minutes.`;
}

function savedText(body) {
  const s = body.settings || {};
  const parts = ['Settings saved.'];
  if (s.sync_interval_minutes !== undefined) parts.push('The next scheduled sync now falls one new interval from now.');
  if (s.auto_apply === false) parts.push('From now on every user sync or import that changes something waits for someone to Apply it.');
  return parts.join(' ');
}
