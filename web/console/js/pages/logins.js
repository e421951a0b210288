// Logins: the people who sign in to the account. Owners and
// administrators invite people, change their name or role, deactivate
// and reactivate them, and send a lost invitation again; they also let
// the platform's support staff look at the account for a while.

import { qs } from '../api.js';
import {
  h, fill, field, busy, dialog, confirm, errorText, fieldErrors, timeEl, badge,
  pageHeader, empty, errorBox,
} from '../ui.js';
import {
  roleLabel, loginStateLabel, loginStateTone, canManage, loading, notForRole,
} from './people-common.js';

export async function render(ctx) {
  if (!canManage(ctx.me)) {
    fill(ctx.main, pageHeader('Logins'),
      notForRole('Only owners and administrators see and manage the account\'s logins.'));
    return;
  }
  const page = new LoginsPage(ctx);
  await page.start();
}

class LoginsPage {
  constructor(ctx) {
    this.ctx = ctx;
    this.me = ctx.me;
    this.logins = [];
    this.rows = new Map();
    this.outcome = h('div', { class: 'outcome', 'aria-live': 'polite' });
    this.list = h('div', { id: 'login-list' }, loading('Loading logins…'));
    this.grants = new SupportAccess(ctx, (el) => this.say(el));
    const invite = h('button', { type: 'button', class: 'primary', onclick: () => this.invite() }, 'Invite');
    fill(ctx.main,
      pageHeader('Logins', invite),
      h('p', { class: 'muted' }, 'The people who sign in to this account, and what each may do. A login is never deleted: deactivate it to stop someone signing in.'),
      this.outcome,
      this.list,
      this.grants.el);
  }

  async start() {
    await Promise.all([this.load(''), this.grants.load()]);
  }

  async load(cursor) {
    let pageData;
    try {
      pageData = await this.ctx.client.get(`/v1/logins${qs({ cursor, limit: 50 })}`);
    } catch (err) {
      if (!this.ctx.current()) return;
      if (cursor) this.say(this.problem(err));
      else fill(this.list, errorBox(err, () => { fill(this.list, loading('Loading logins…')); this.load(''); }));
      return;
    }
    if (!this.ctx.current()) return;
    this.logins.push(...pageData.items);
    this.nextCursor = pageData.next_cursor;
    this.draw();
  }

  draw() {
    if (!this.logins.length) {
      fill(this.list, empty('This account has no logins yet. Invite someone to get started.'));
      return;
    }
    this.tbody = h('tbody', {}, this.logins.map((l) => this.row(l)));
    const more = this.nextCursor
      ? h('div', { class: 'pager' }, h('button', {
        type: 'button',
        onclick: (ev) => busy(ev.currentTarget, () => this.load(this.nextCursor)),
      }, 'Show more logins'))
      : null;
    fill(this.list,
      h('div', { class: 'table-wrap' },
        h('table', { class: 'responsive logins-table' },
          h('caption', { class: 'visually-hidden' }, 'Logins of this account'),
          h('thead', {}, h('tr', {}, ['Person', 'Role', 'State', 'Last signed in', 'Actions'].map((c) => h('th', { scope: 'col' }, c)))),
          this.tbody)),
      more);
  }

  // mayChange says whether the signed-in login may change this one: only
  // an owner changes an owner's login.
  mayChange(login) {
    return login.role !== 'owner' || this.me.role === 'owner';
  }

  row(l) {
    const nameId = `login-${l.id}`;
    const isMe = l.id === this.me.id;
    const act = (label, onclick, cls) => h('button', { type: 'button', class: cls, 'aria-describedby': nameId, onclick }, label);
    const actions = [];
    if (this.mayChange(l)) {
      if (l.state !== 'deactivated') actions.push(act('Edit', () => this.edit(l)));
      if (l.state === 'invited') actions.push(act('Resend invitation', (ev) => busy(ev.currentTarget, () => this.resend(l))));
      if (l.state === 'deactivated') actions.push(act('Reactivate', (ev) => busy(ev.currentTarget, () => this.reactivate(l))));
      else actions.push(act('Deactivate', () => this.deactivate(l)));
    }
    actions.push(h('a', {
      class: 'button', href: `#/audit${qs({ target_type: 'login', target_id: l.id })}`, 'aria-describedby': nameId,
    }, 'History'));
    const tr = h('tr', { dataset: { id: l.id, state: l.state } },
      h('td', { 'data-label': 'Person' }, h('span', { class: 'person' },
        h('span', {}, h('span', { id: nameId, class: 'person-name' }, l.name || l.email), isMe ? h('span', { class: 'muted' }, ' (you)') : null),
        h('span', { class: 'person-email muted' }, l.email))),
      h('td', { 'data-label': 'Role' }, roleLabel[l.role] || l.role),
      h('td', { 'data-label': 'State' }, badge(loginStateLabel[l.state] || l.state, loginStateTone(l.state))),
      h('td', { 'data-label': 'Last signed in' }, l.last_login_at ? timeEl(l.last_login_at) : h('span', { class: 'muted' }, 'Never')),
      h('td', { 'data-label': 'Actions' },
        h('div', { class: 'row-actions' }, actions),
        this.mayChange(l) ? null : h('p', { class: 'hint' }, 'Only an owner can change an owner\'s login.')));
    this.rows.set(l.id, tr);
    return tr;
  }

  // replace shows a login's new state in its row and keeps the keyboard
  // focus in that row.
  replace(login) {
    const i = this.logins.findIndex((l) => l.id === login.id);
    if (i < 0) {
      this.logins.push(login);
      this.draw();
      return;
    }
    this.logins[i] = login;
    const old = this.rows.get(login.id);
    const fresh = this.row(login);
    old?.replaceWith(fresh);
    fresh.querySelector('button, a.button')?.focus();
  }

  say(el) {
    fill(this.outcome, el);
  }

  good(...text) {
    return h('div', { class: 'alert alert-good', role: 'status' }, h('p', {}, ...text));
  }

  problem(err, login) {
    let text = errorText(err);
    if (err.code === 'last_owner') {
      text = `${login ? (login.name || login.email) : 'This login'} is the account's last active owner. The account must always keep one, so this cannot be done now. Make another login an owner first, then try again.`;
    }
    return h('div', { class: 'alert alert-bad', role: 'alert' }, h('p', {}, text));
  }

  roleSelect(current) {
    const roles = this.me.role === 'owner' ? ['member', 'admin', 'owner'] : ['member', 'admin'];
    return h('select', { name: 'role' }, roles.map((r) => h('option', { value: r, selected: r === current }, roleLabel[r])));
  }

  roleHint() {
    return this.me.role === 'owner'
      ? 'Members see the account and start syncs; administrators also manage locations, logins and keys; owners also manage owners.'
      : 'Members see the account and start syncs; administrators also manage locations, logins and keys. Only an owner can make someone an owner.';
  }

  async invite() {
    const email = h('input', { type: 'email', name: 'email', autocomplete: 'off', required: true, maxlength: '254' });
    const name = h('input', { type: 'text', name: 'name', autocomplete: 'off', required: true, maxlength: '200' });
    const role = this.roleSelect('member');
    const alert = h('div', { class: 'alert alert-bad', role: 'alert', hidden: true });
    const form = h('form', { novalidate: true },
      h('p', {}, 'They get an e-mail with a link to choose a password. The link works once, for 72 hours.'),
      alert,
      field('E-mail', email),
      field('Name', name),
      field('Role', role, this.roleHint()));
    let sending = false;
    const result = await dialog({
      title: 'Invite a person',
      content: form,
      buttons: [
        { label: 'Cancel', value: null },
        {
          label: 'Send invitation',
          primary: true,
          action: async () => {
            if (sending) return false;
            alert.hidden = true;
            fieldErrors(form, null);
            if (!email.value.trim() || !name.value.trim()) {
              alert.textContent = 'Enter the person\'s e-mail address and name.';
              alert.hidden = false;
              (email.value.trim() ? name : email).focus();
              return false;
            }
            sending = true;
            try {
              this.invited = await this.ctx.client.post('/v1/logins', { email: email.value.trim(), name: name.value.trim(), role: role.value });
              return true;
            } catch (err) {
              if (!fieldErrors(form, err)) {
                alert.textContent = err.code === 'conflict'
                  ? `${sentence(errorText(err))} Each e-mail address can belong to one login only; if it is this account's, find it in the list.`
                  : errorText(err);
                alert.hidden = false;
              }
              form.querySelector('[aria-invalid="true"]')?.focus();
              return false;
            } finally {
              sending = false;
            }
          },
          value: 'sent',
        },
      ],
    });
    if (result !== 'sent' || !this.ctx.current()) return;
    const res = this.invited;
    this.say(this.good(`${res.message}. `, 'The link in it works once, for 72 hours; until then the login shows as Invited.'));
    this.replace(res.login);
  }

  async edit(login) {
    const name = h('input', { type: 'text', name: 'name', value: login.name, required: true, maxlength: '200' });
    const role = this.roleSelect(login.role);
    const alert = h('div', { class: 'alert alert-bad', role: 'alert', hidden: true });
    const form = h('form', { novalidate: true },
      alert,
      h('p', {}, `E-mail: ${login.email} (it cannot be changed).`),
      field('Name', name),
      field('Role', role, this.roleHint()));
    let saving = false;
    const result = await dialog({
      title: `Change ${login.name || login.email}`,
      content: form,
      buttons: [
        { label: 'Cancel', value: null },
        {
          label: 'Save',
          primary: true,
          value: 'saved',
          action: async () => {
            if (saving) return false;
            alert.hidden = true;
            fieldErrors(form, null);
            const change = {};
            if (name.value.trim() !== login.name) change.name = name.value.trim();
            if (role.value !== login.role) change.role = role.value;
            if (!Object.keys(change).length) {
              this.updated = null;
              return true;
            }
            if (change.name === '') {
              alert.textContent = 'Enter a name.';
              alert.hidden = false;
              name.focus();
              return false;
            }
            saving = true;
            try {
              this.updated = await this.ctx.client.patch(`/v1/logins/${encodeURIComponent(login.id)}`, change);
              return true;
            } catch (err) {
              if (!fieldErrors(form, err)) {
                fill(alert, this.problem(err, login).firstChild);
                alert.hidden = false;
              }
              return false;
            } finally {
              saving = false;
            }
          },
        },
      ],
    });
    if (result !== 'saved' || !this.updated || !this.ctx.current()) return;
    const l = this.updated;
    const words = [];
    if (l.name !== login.name) words.push(`${login.name || login.email} is renamed ${l.name}.`);
    if (l.role !== login.role) {
      const role = roleLabel[l.role].toLowerCase();
      words.push(`${l.name || l.email} is now ${/^[aeiou]/.test(role) ? 'an' : 'a'} ${role}: the new role applies from their next action, and they stay signed in.`);
    }
    this.say(this.good(words.join(' ')));
    this.replace(l);
    if (l.id === this.me.id) await this.ctx.app.loadMe();
  }

  async deactivate(login) {
    const who = login.name || login.email;
    const isMe = login.id === this.me.id;
    const ok = await confirm({
      title: `Deactivate ${who}?`,
      message: h('div', {},
        h('p', {}, `${who} (${login.email}) is signed out at once: every session ends, and any live connection (this console, the apps) closes straight away. Links mailed to them, such as an invitation or a password reset, stop working.`),
        h('p', {}, 'They cannot sign in until the login is reactivated. Nothing they did is lost: the audit log and their sync runs keep their name.'),
        isMe ? h('p', { class: 'alert alert-warn' }, 'This is your own login: you will be signed out now.') : null),
      confirmLabel: 'Deactivate',
      danger: true,
    });
    if (!ok) return;
    try {
      const l = await this.ctx.client.post(`/v1/logins/${encodeURIComponent(login.id)}/deactivate`);
      if (isMe) {
        this.ctx.client.end('unauthorized');
        return;
      }
      if (!this.ctx.current()) return;
      this.say(this.good(`${who} is deactivated and signed out everywhere.`));
      this.replace(l);
    } catch (err) {
      this.say(this.problem(err, login));
    }
  }

  async reactivate(login) {
    const who = login.name || login.email;
    try {
      const l = await this.ctx.client.post(`/v1/logins/${encodeURIComponent(login.id)}/reactivate`);
      if (!this.ctx.current()) return;
      this.say(this.good(l.state === 'invited'
        ? `${who} is reactivated. They had not accepted their invitation, so a new one is on its way to ${l.email}.`
        : `${who} is reactivated and can sign in again with their password.`));
      this.replace(l);
    } catch (err) {
      this.say(this.problem(err, login));
    }
  }

  async resend(login) {
    try {
      const res = await this.ctx.client.post(`/v1/logins/${encodeURIComponent(login.id)}/invitation`);
      if (!this.ctx.current()) return;
      this.say(this.good(`${res.message}. `, 'The earlier link no longer works; the new one works once, for 72 hours.'));
      this.replace(res.login);
    } catch (err) {
      this.say(this.problem(err, login));
    }
  }
}

// SupportAccess lists and changes the staff grants: which of the
// platform's support logins may look at this account, read-only, and
// until when.
class SupportAccess {
  constructor(ctx, say) {
    this.ctx = ctx;
    this.say = say;
    this.grants = [];
    this.list = h('div', {}, loading('Loading support access…'));
    this.form = this.grantForm();
    this.el = h('section', { class: 'support-access', 'aria-labelledby': 'support-access-title' },
      h('h2', { id: 'support-access-title' }, 'Support access'),
      h('p', { class: 'muted' }, 'Let the platform\'s support staff look at this account to help you. They can see it but change nothing. Access ends on the date you choose, or when you revoke it.'),
      this.list,
      this.form);
  }

  async load() {
    let res;
    try {
      res = await this.ctx.client.get('/v1/staff-grants');
    } catch (err) {
      if (!this.ctx.current()) return;
      fill(this.list, errorBox(err, () => { fill(this.list, loading('Loading support access…')); this.load(); }));
      return;
    }
    if (!this.ctx.current()) return;
    this.grants = res.items;
    this.draw();
  }

  draw() {
    if (!this.grants.length) {
      fill(this.list, empty('No support staff can see this account.'));
      return;
    }
    const now = Date.now();
    fill(this.list, h('div', { class: 'table-wrap' },
      h('table', { class: 'responsive' },
        h('caption', { class: 'visually-hidden' }, 'Support staff who may see this account'),
        h('thead', {}, h('tr', {}, ['Support login', 'Access until', 'Given', 'State', 'Actions'].map((c) => h('th', { scope: 'col' }, c)))),
        h('tbody', {}, this.grants.map((g) => {
          const expired = g.expires_at && new Date(g.expires_at).getTime() <= now;
          const who = grantee(g);
          const whoId = `grant-${g.id}`;
          return h('tr', { dataset: { id: g.id } },
            h('td', { 'data-label': 'Support login' }, h('span', { class: 'person' },
              h('span', { id: whoId, class: 'person-name wrap-anywhere' }, who),
              g.login_name && g.login_email ? h('span', { class: 'person-email muted wrap-anywhere' }, g.login_email) : null)),
            h('td', { 'data-label': 'Access until' }, g.expires_at ? timeEl(g.expires_at) : 'Until revoked'),
            h('td', { 'data-label': 'Given' }, timeEl(g.created_at)),
            h('td', { 'data-label': 'State' }, expired ? badge('Expired', 'neutral') : badge('Active', 'good')),
            h('td', { 'data-label': 'Actions' }, h('button', {
              type: 'button', 'aria-describedby': whoId, onclick: () => this.revoke(g, who),
            }, 'Revoke')));
        })))));
  }

  grantForm() {
    const email = h('input', { type: 'email', name: 'email', autocomplete: 'off', required: true });
    const until = h('input', { type: 'date', name: 'expires_at', min: localDate(new Date()) });
    const submit = h('button', { type: 'submit' }, 'Grant access');
    const alert = h('div', { class: 'alert alert-bad', role: 'alert', hidden: true });
    const form = h('form', { class: 'grant-form', novalidate: true, 'aria-label': 'Grant support access' },
      h('h3', {}, 'Grant access'),
      alert,
      h('div', { class: 'toolbar grant-fields' },
        field('Support e-mail', email),
        field('Access until (optional)', until, 'Access ends at the end of that day. Leave it empty to keep access until you revoke it.')),
      h('div', { class: 'form-actions' }, submit));
    form.addEventListener('submit', (ev) => {
      ev.preventDefault();
      alert.hidden = true;
      fieldErrors(form, null);
      if (!email.value.trim()) {
        alert.textContent = 'Enter the e-mail address of the support login.';
        alert.hidden = false;
        email.focus();
        return;
      }
      const body = { email: email.value.trim() };
      if (until.value) body.expires_at = endOfDay(until.value).toISOString();
      busy(submit, async () => {
        try {
          const g = await this.ctx.client.post('/v1/staff-grants', body);
          if (!this.ctx.current()) return;
          this.grants.push(g);
          this.draw();
          email.value = '';
          until.value = '';
          this.say(h('div', { class: 'alert alert-good', role: 'status' }, h('p', {},
            `${grantee(g)} can now see this account, read-only, `,
            g.expires_at ? ['until ', timeEl(g.expires_at), '.'] : 'until you revoke it.')));
        } catch (err) {
          if (!fieldErrors(form, err)) {
            alert.textContent = errorText(err);
            alert.hidden = false;
          }
        }
      });
    });
    return form;
  }

  async revoke(grant, who) {
    const ok = await confirm({
      title: `Revoke ${who}'s access?`,
      message: `${who} stops seeing this account at once; if they are watching it now, their view closes.`,
      confirmLabel: 'Revoke',
      danger: true,
    });
    if (!ok) return;
    try {
      await this.ctx.client.delete(`/v1/staff-grants/${encodeURIComponent(grant.id)}`);
      if (!this.ctx.current()) return;
      this.grants = this.grants.filter((g) => g.id !== grant.id);
      this.draw();
      this.say(h('div', { class: 'alert alert-good', role: 'status' }, h('p', {}, `${who} can no longer see this account.`)));
    } catch (err) {
      this.say(h('div', { class: 'alert alert-bad', role: 'alert' }, h('p', {}, errorText(err))));
    }
  }
}

// grantee names the support login a grant is for: by name, or by e-mail
// when it has no name.
function grantee(g) {
  return g.login_name || g.login_email || g.email || 'A support login';
}

// sentence ends a text with a full stop, once.
function sentence(text) {
  return /[.!?]$/.test(text) ? text : `${text}.`;
}

// localDate is a date as a date input holds it, in the browser's time zone.
function localDate(d) {
  const pad = (n) => String(n).padStart(2, '0');
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}`;
}

// endOfDay is the last second of the date chosen, in the browser's time
// zone: access lasts through the whole of that day.
function endOfDay(value) {
  const [y, m, d] = value.split('-').map(Number);
  return new Date(y, m - 1, d, 23, 59, 59);
}
