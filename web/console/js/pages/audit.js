// Audit Log History: every change made to the account, newest first, who
// made it and what it changed, field by field. Opened with a record
// (target_type and target_id in the address), it is that record's
// history. The API never returns a secret here, and the page drops any
// value whose name suggests one all the same.

import { qs } from '../api.js';
import {
  h, fill, busy, timeEl, fmtTime, pageHeader, empty, errorBox, field,
  runStateLabel, kindLabel,
} from '../ui.js';
import {
  Directory, roleLabel, loginStateLabel, authorityLabel, loading, notForRole, yesNo,
} from './people-common.js';

const filterNames = ['target_type', 'target_id', 'actor_id', 'action'];

const actionWords = {
  'location.create': 'Added a location',
  'location.update': 'Changed a location\'s settings',
  'location.force_sync': 'Asked for a full user sync on the next check-in',
  'panel.credential_rotate': 'Issued a new panel credential',
  'panel.credential_revoke': 'Revoked the panel credential',
  'run.apply': 'Applied a held sync run',
  'run.reapply': 'Re-applied a sync run',
  'run.cancel': 'Cancelled a sync run',
  'run.mark_cancelled': 'Marked a sync run cancelled (unsafe)',
  'batch.cancel': 'Cancelled a sync of several locations',
  'import.create': 'Uploaded a user import',
  'group.rank': 'Changed a group\'s worker rank',
  'api_key.created': 'Created an API key',
  'api_key.revoked': 'Revoked an API key',
  'staff.grant': 'Gave support staff access',
  'staff.revoke': 'Revoked support staff access',
  'login.invite': 'Invited a person',
  'login.invite_resend': 'Sent an invitation again',
  'login.update': 'Changed a login\'s name or role',
  'login.deactivate': 'Deactivated a login',
  'login.reactivate': 'Reactivated a login',
  'login.invitation_accepted': 'Accepted the invitation',
  'login.password_change': 'Changed their password',
  'login.password_reset': 'Chose a new password from a reset link',
  'login.force_sync': 'Asked for a full user sync wherever the person is linked',
  'link.auto': 'Ran Auto Link Users',
  'link.propose': 'Proposed a link',
  'link.save': 'Saved a link',
  'link.options': 'Changed a linked user\'s options',
  'link.remove': 'Removed a link',
};

const targetWords = {
  location: 'Location',
  login: 'Login',
  api_key: 'API key',
  staff_grant: 'Support access',
  run: 'Sync run',
  batch: 'Sync of several locations',
  link: 'Linked user',
  account: 'Account',
  group: 'Group',
  import: 'User import',
};

const actorWords = { login: 'Login', api_key: 'API key', system: 'The service' };

const fieldWords = {
  name: 'Name',
  email: 'E-mail',
  role: 'Role',
  state: 'State',
  group: 'Group',
  rank: 'Worker rank',
  sync_interval_minutes: 'Sync every (minutes)',
  auto_apply: 'Apply changes automatically',
  force_update_all: 'Force update of all records',
  safety_threshold_percent: 'Safety threshold (%)',
  safety_threshold_count: 'Safety threshold (users)',
  report_emails: 'Report e-mails',
  panel_serial: 'Panel serial',
  credential_expires_at: 'Credential expires',
  credential_revoked_at: 'Credential revoked',
  force_pending: 'Full user sync on next check-in',
  login_id: 'Login',
  location_id: 'Location',
  user_number: 'User number',
  code: 'Keep code in sync',
  schedule: 'Keep schedule in sync',
  partitions: 'Keep partitions in sync',
  propagate: 'Also put on',
  drafts: 'Links proposed',
  unmatched: 'Users without a match',
  ambiguous: 'Users with several matches',
  locations: 'Locations',
  flagged: 'Locations flagged',
  kind: 'Kind',
  scope: 'Scope',
  runs_cancelled: 'Runs cancelled',
  expires_at: 'Expires',
  revoked_at: 'Revoked',
  scopes: 'Permissions',
  prefix: 'Key starts with',
  batch_id: 'Batch',
  format: 'File format',
  rows: 'Rows',
  control_file: 'Control file',
  locations_by_rank: 'Locations by rank',
};

const propagateWords = { none: 'Nowhere else', group: 'Its group\'s locations', all: 'All locations' };
const scopeWords = { all: 'All locations', group: 'A group', locations: 'Chosen locations' };

// A value is left out when its name suggests a secret, whatever the API
// sent.
const secretName = /password|secret|token|digest|hash|credential$/i;

export async function render(ctx) {
  const filters = {};
  for (const k of filterNames) {
    const v = ctx.query.get(k);
    if (v) filters[k] = v;
  }
  const mayRead = ['owner', 'admin'].includes(ctx.me.role)
    || (ctx.me.role === 'support' && ctx.me.account_id !== ctx.me.home_account_id);
  if (!mayRead) {
    fill(ctx.main, pageHeader('Audit Log History'),
      notForRole('Only owners, administrators and support staff can read the audit log: it names people\'s e-mails and every change to the account.'));
    return;
  }
  const page = new AuditPage(ctx, filters);
  await page.start();
}

class AuditPage {
  constructor(ctx, filters) {
    this.ctx = ctx;
    this.filters = filters;
    this.dir = new Directory(ctx.client);
    this.list = h('ol', { class: 'audit-list', 'aria-label': 'Changes, newest first' });
    this.status = h('p', { class: 'muted', role: 'status' });
    this.more = h('div', { class: 'pager' });
    this.body = h('div', {}, loading('Loading the audit log…'));
    this.titleEl = h('h1', { tabindex: '-1' }, Object.keys(filters).length ? 'History' : this.title(''));
    fill(ctx.main,
      h('div', { class: 'page-header' }, this.titleEl),
      this.filterBar(),
      this.body);
  }

  async start() {
    // Names make entries readable, but the log is shown without them
    // when they cannot be read.
    const names = Promise.allSettled([this.dir.loadLocations(), this.dir.loadLogins()]);
    let first;
    try {
      [first] = await Promise.all([this.fetch(''), names]);
    } catch (err) {
      if (!this.ctx.current()) return;
      fill(this.body, errorBox(err, () => this.ctx.app.route()));
      return;
    }
    if (!this.ctx.current()) return;
    this.titleEl.textContent = this.title(this.subjectName(first.items));
    if (!first.items.length) {
      fill(this.body, empty(Object.keys(this.filters).length
        ? 'No change matches these filters.'
        : 'No change has been recorded yet. Changes people, API keys and the service make to the account appear here.'));
      return;
    }
    fill(this.body, this.list, this.more, this.status);
    this.show(first);
  }

  fetch(before) {
    return this.ctx.client.get(`/v1/audit${qs({ ...this.filters, before, limit: 50 })}`);
  }

  show(pageData) {
    this.list.append(...pageData.items.map((e) => this.entry(e)));
    const n = this.list.children.length;
    this.more.hidden = !pageData.next_before;
    if (pageData.next_before) {
      fill(this.more, h('button', {
        type: 'button',
        onclick: (ev) => busy(ev.currentTarget, () => this.older(pageData.next_before)),
      }, 'Load older'));
      this.status.textContent = `Showing the ${n} most recent changes.`;
    } else {
      fill(this.more);
      this.status.textContent = n === 1 ? 'This is the only change recorded.' : `All ${n} changes are shown.`;
    }
  }

  async older(before) {
    let pageData;
    try {
      pageData = await this.fetch(before);
    } catch (err) {
      if (!this.ctx.current()) return;
      const box = errorBox(err, () => {
        box.remove();
        this.older(before);
      });
      fill(this.more, box);
      return;
    }
    if (!this.ctx.current()) return;
    const firstNew = this.list.children.length;
    this.show(pageData);
    // The keyboard goes on where the older entries begin.
    const next = this.list.children[firstNew];
    if (next) {
      next.setAttribute('tabindex', '-1');
      next.focus();
    }
  }

  title(name) {
    const f = this.filters;
    if (f.target_type && f.target_id) return `History of ${name || `this ${(targetWords[f.target_type] || f.target_type).toLowerCase()}`}`;
    if (f.actor_id) return `Changes by ${name || 'one login or key'}`;
    return 'Audit Log History';
  }

  // subjectName names what the page is the history of: the record's
  // name as the newest entry gives it, or as the account knows it now.
  subjectName(items) {
    const f = this.filters;
    if (f.target_type && f.target_id) {
      // The name a person knows now comes first; the log's name is the
      // one the record had then.
      if (f.target_type === 'login' && this.dir.logins.has(f.target_id)) return this.dir.loginName(f.target_id);
      if (f.target_type === 'location' && this.dir.locations.has(f.target_id)) return this.dir.locationName(f.target_id);
      const e = items.find((x) => this.targetName(x));
      return e ? this.targetName(e) : '';
    }
    if (f.actor_id) {
      const e = items.find((x) => x.actor?.id === f.actor_id);
      if (e) return e.actor.name;
      if (this.dir.logins.has(f.actor_id)) return this.dir.loginName(f.actor_id);
    }
    return '';
  }

  filterBar() {
    const f = this.filters;
    const type = h('select', { name: 'target_type' },
      h('option', { value: '' }, 'Any record'),
      Object.entries(targetWords).map(([v, label]) => h('option', { value: v, selected: f.target_type === v }, label)));
    const action = h('select', { name: 'action' },
      h('option', { value: '' }, 'Any change'),
      Object.entries(actionWords).map(([v, label]) => h('option', { value: v, selected: f.action === v }, label)));
    const apply = () => {
      const next = { ...f, target_type: type.value, action: action.value };
      // A record's id belongs to its type: another type drops it.
      if (next.target_type !== f.target_type) delete next.target_id;
      this.ctx.navigate(`/audit${qs(next)}`);
    };
    const form = h('form', { class: 'toolbar audit-filters', 'aria-label': 'Filter the audit log', novalidate: true },
      field('Record', type),
      field('Change', action),
      h('div', { class: 'field' }, h('button', { type: 'submit' }, 'Filter')),
      Object.keys(f).length ? h('div', { class: 'field' }, h('a', { class: 'button', href: '#/audit' }, 'Show every change')) : null);
    form.addEventListener('submit', (ev) => {
      ev.preventDefault();
      apply();
    });
    return form;
  }

  entry(e) {
    const actorKind = actorWords[e.actor?.kind] || e.actor?.kind || '';
    const actorName = e.actor?.name || (e.actor?.kind === 'system' ? 'The service' : 'Someone');
    const actor = e.actor?.id && this.filters.actor_id !== e.actor.id
      ? h('a', { href: `#/audit${qs({ actor_id: e.actor.id })}`, title: `Every change by ${actorName}` }, actorName)
      : h('span', {}, actorName);
    const t = e.target || {};
    const typeWord = targetWords[t.type] || t.type || '';
    const isSubject = this.filters.target_type === t.type && this.filters.target_id === t.id;
    const open = this.targetLink(t);
    const history = t.id && t.type && !isSubject
      ? h('a', { href: `#/audit${qs({ target_type: t.type, target_id: t.id })}` }, 'History')
      : null;
    return h('li', { class: 'audit-entry', dataset: { action: e.action } },
      h('div', { class: 'audit-when' }, timeEl(e.occurred_at)),
      h('div', { class: 'audit-what' },
        h('p', { class: 'audit-action' }, actionWords[e.action] || words(e.action)),
        h('p', { class: 'audit-meta' },
          h('span', {}, 'By ', actor, actorKind && actorKind !== actorName ? h('span', { class: 'muted' }, ` (${actorKind})`) : null),
          h('span', {}, `${typeWord}: `, h('span', { class: 'audit-target' }, this.targetName(e) || '—'),
            open ? [' · ', open] : null, history ? [' · ', history] : null)),
        this.diff(e)));
  }

  targetLink(t) {
    if (!t.id) return null;
    const id = encodeURIComponent(t.id);
    const to = {
      location: [`#/locations/${id}/settings`, 'Settings'],
      run: [`#/runs/${id}`, 'View run'],
      batch: [`#/batches/${id}`, 'View'],
    }[t.type];
    if (!to) return null;
    if (t.type === 'location' && !this.dir.locations.has(t.id)) return null;
    return h('a', { href: to[0] }, to[1]);
  }

  // targetName is how a person recognises the record: the name the entry
  // keeps from the time of the change. Entries recorded before the
  // service named every target are named from the ids they hold.
  targetName(e) {
    const t = e.target || {};
    if (t.name) return t.name;
    if (t.type === 'link') {
      const v = e.after || e.before || {};
      if (v.login_id || v.location_id) {
        const who = v.login_id ? this.dir.loginName(v.login_id) : 'A login';
        const where = v.location_id ? this.dir.locationName(v.location_id) : 'a location';
        return `${who} at ${where}${v.user_number ? ` (user ${v.user_number})` : ''}`;
      }
    }
    if (t.type === 'account') return 'This account';
    if (t.type === 'login' && this.dir.logins.has(t.id)) return this.dir.loginName(t.id);
    if (t.type === 'location' && this.dir.locations.has(t.id)) return this.dir.locationName(t.id);
    return '';
  }

  // diff shows what the change did, field by field: old → new for an
  // update, the values set for a creation, the values held for a removal.
  diff(e) {
    const before = e.before && typeof e.before === 'object' ? e.before : null;
    const after = e.after && typeof e.after === 'object' ? e.after : null;
    if (!before && !after) return null;
    const keys = [...new Set([...Object.keys(before || {}), ...Object.keys(after || {})])]
      .filter((k) => !secretName.test(k))
      .sort((a, b) => keyRank(a) - keyRank(b));
    const rows = [];
    for (const k of keys) {
      const has = { before: before && k in before, after: after && k in after };
      const b = before?.[k];
      const a = after?.[k];
      if (has.before && has.after) {
        if (same(b, a)) continue;
        rows.push(h('div', { class: 'audit-field' },
          h('dt', {}, label(k)),
          h('dd', {},
            h('span', { class: 'audit-old' }, this.value(k, b)),
            h('span', { 'aria-hidden': 'true' }, ' → '),
            h('span', { class: 'visually-hidden' }, ' changed to '),
            h('span', { class: 'audit-new' }, this.value(k, a)))));
      } else {
        rows.push(h('div', { class: 'audit-field' },
          h('dt', {}, label(k)),
          h('dd', {}, this.value(k, has.after ? a : b))));
      }
    }
    if (!rows.length) return null;
    const caption = before && after ? 'What changed' : (after ? 'Values set' : 'Values before');
    return h('div', { class: 'audit-diff' },
      h('p', { class: 'visually-hidden' }, caption),
      h('dl', {}, rows));
  }

  value(key, v) {
    if (v === null || v === undefined || v === '') return 'none';
    if (typeof v === 'boolean') return yesNo(v);
    if (Array.isArray(v)) return v.length ? v.map((x) => this.value(key, x)).join(', ') : 'none';
    if (typeof v === 'object') {
      return Object.entries(v).map(([k, x]) => `${key === 'locations_by_rank' ? `rank ${k}` : label(k)}: ${this.value(k, x)}`).join('; ') || 'none';
    }
    const s = String(v);
    switch (key) {
      case 'login_id': return this.dir.logins.has(s) ? this.dir.loginName(s) : s;
      case 'location_id': return this.dir.locations.has(s) ? this.dir.locationName(s) : s;
      case 'role': return roleLabel[s] || s;
      case 'state': return loginStateLabel[s] || runStateLabel[s] || words(s);
      case 'kind': return kindLabel[s] || s;
      case 'propagate': return propagateWords[s] || s;
      case 'scope': return scopeWords[s] || s;
      case 'authority': return authorityLabel[s] || s;
      default:
        if (/_at$/.test(key) || key === 'expires_at') return fmtTime(s);
        return s;
    }
  }
}

// Names and e-mails come first, as they say whose record it is.
function keyRank(k) {
  const first = ['name', 'email', 'login_id', 'location_id', 'user_number', 'role', 'state'];
  const i = first.indexOf(k);
  return i < 0 ? first.length : i;
}

function label(k) {
  return fieldWords[k] || words(k);
}

function words(s) {
  const t = String(s || '').replace(/[._]/g, ' ').trim();
  return t ? t.charAt(0).toUpperCase() + t.slice(1) : '';
}

function same(a, b) {
  return JSON.stringify(a) === JSON.stringify(b);
}
