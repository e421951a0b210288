// What the pages about people share (User lookup, Linking, Logins, Audit
// log, My account): the words for roles, states and authorities, the
// loading and "not for your role" states, and the names behind the ids
// that links and audit entries carry.

import { pageAll, qs } from '../api.js';
import { h } from '../ui.js';

export const roleLabel = {
  owner: 'Owner',
  admin: 'Administrator',
  member: 'Member',
  support: 'Support',
};

export const loginStateLabel = {
  invited: 'Invited',
  active: 'Active',
  deactivated: 'Deactivated',
};

export function loginStateTone(state) {
  return { active: 'good', invited: 'info', deactivated: 'neutral' }[state] || 'neutral';
}

export const authorityLabel = {
  master: 'Master',
  standard: 'Standard',
  arm_only: 'Arm only',
  duress: 'Duress',
  guest: 'Guest',
};

// canManage says whether the signed-in login manages the account's
// people: owners and administrators do.
export function canManage(me) {
  return Boolean(me) && (me.role === 'owner' || me.role === 'admin');
}

export function loading(text = 'Loading…') {
  return h('p', { class: 'loading', role: 'status' }, text);
}

// notForRole is what a page shows to a role that cannot use it, instead
// of a request that would only answer 403.
export function notForRole(text) {
  return h('div', { class: 'alert alert-info', role: 'status' },
    h('p', {}, text),
    h('p', {}, 'Ask an owner or administrator of the account if you need a change.'));
}

// setFragmentQuery records a page's search in the address bar without
// loading the page again, so a reload or a shared link shows the same
// search.
export function setFragmentQuery(path, params) {
  history.replaceState(null, '', `${location.pathname}#${path}${qs(params)}`);
}

// Directory knows the names behind the ids of logins and locations. Each
// list is read once, when first asked for; a role that may not list
// logins gets an empty list rather than an error.
export class Directory {
  constructor(client) {
    this.client = client;
    this.logins = new Map();
    this.locations = new Map();
    this.loaded = {};
  }

  loadLocations() {
    if (!this.loaded.locations) {
      this.loaded.locations = pageAll(this.client, '/v1/locations', { limit: 200 }).then((items) => {
        for (const l of items) this.locations.set(l.id, l);
        return this.locations;
      });
    }
    return this.loaded.locations;
  }

  loadLogins() {
    if (!this.loaded.logins) {
      this.loaded.logins = pageAll(this.client, '/v1/logins', { limit: 200 }).then((items) => {
        for (const l of items) this.logins.set(l.id, l);
        return this.logins;
      }).catch((err) => {
        if (err.status === 403) return this.logins;
        this.loaded.logins = null;
        throw err;
      });
    }
    return this.loaded.logins;
  }

  addLogin(login) {
    this.logins.set(login.id, login);
  }

  loginName(id) {
    const l = this.logins.get(id);
    if (!l) return id ? 'A login not listed here' : '—';
    return l.name || l.email;
  }

  loginEmail(id) {
    return this.logins.get(id)?.email || '';
  }

  locationName(id) {
    const l = this.locations.get(id);
    return l ? l.name : (id ? 'A location no longer listed' : '—');
  }

  locationGroup(id) {
    return this.locations.get(id)?.group || '';
  }
}

// personCell shows a login as its name with its e-mail below.
export function personCell(directory, loginId) {
  const email = directory.loginEmail(loginId);
  return h('span', { class: 'person' },
    h('span', { class: 'person-name' }, directory.loginName(loginId)),
    email && email !== directory.loginName(loginId) ? h('span', { class: 'person-email muted' }, email) : null);
}

export function yesNo(v) {
  return v ? 'Yes' : 'No';
}

export function plural(n, one, many) {
  return `${n} ${n === 1 ? one : many}`;
}
