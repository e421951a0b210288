// Linking: a panel user is linked to a login so that a person is one
// person across locations. Choose locations, read their panels' users
// (Load External Users), let the server propose links by e-mail (Auto Link
// Users) or propose one by hand (Link User), then save the proposals (Save
// Added Users), set what is kept in sync for each linked person (Save Users
// Options) and remove links (Remove Selected Users).

import { pageAll } from '../api.js';
import {
  h, fill, field, busy, dialog, confirm, errorText, fieldErrors,
  pageHeader, empty, errorBox,
} from '../ui.js';
import { Directory, canManage, loading, notForRole, personCell, plural } from './people-common.js';

// Names of panel users are looked up for at most this many locations,
// so a large account's page still opens quickly.
const namedLocations = 40;
const batchPoll = 1500;
const batchPollFor = 10 * 60 * 1000;
const maxAutoLink = 1000;

const propagateLabel = {
  none: 'Nowhere else',
  group: 'Its group\'s locations',
  all: 'All locations',
};

export async function render(ctx) {
  if (!canManage(ctx.me)) {
    fill(ctx.main, pageHeader('Linking'),
      notForRole('Only owners and administrators link panel users to logins.'));
    return;
  }
  const page = new LinkingPage(ctx);
  await page.start();
}

class LinkingPage {
  constructor(ctx) {
    this.ctx = ctx;
    this.dir = new Directory(ctx.client);
    this.chosen = new Set();
    this.drafts = [];
    this.saved = [];
    this.selected = new Set();
    this.edits = new Map();
    this.panelUsers = new Map();
    this.names = new Map();
    this.timers = new Set();
    ctx.onCleanup(() => this.timers.forEach((t) => clearTimeout(t)));
    this.outcome = h('div', { class: 'outcome', 'aria-live': 'polite' });
    this.autoResult = h('div', { class: 'auto-link-result' });
    this.body = h('div', {}, loading('Loading locations, logins and links…'));
    fill(ctx.main,
      pageHeader('Linking'),
      h('p', { class: 'muted' }, 'Link the users on your panels to the people who sign in, so each person is one person at every location. A proposed link changes nothing until it is saved.'),
      this.body);
  }

  async start() {
    try {
      await Promise.all([this.dir.loadLocations(), this.dir.loadLogins(), this.loadLinks()]);
      await this.loadPanelNames();
    } catch (err) {
      if (!this.ctx.current()) return;
      fill(this.body, errorBox(err, () => this.ctx.app.route()));
      return;
    }
    if (!this.ctx.current()) return;
    this.filter = h('input', { type: 'search', name: 'filter', placeholder: 'Person or location', autocomplete: 'off' });
    this.filter.addEventListener('input', () => this.drawLists());
    this.selectionStatus = h('span', { class: 'muted selection-status', role: 'status' });
    this.drafted = h('section', { class: 'card', 'aria-labelledby': 'drafts-title' });
    this.linked = h('section', { class: 'card', 'aria-labelledby': 'saved-title' });
    fill(this.body,
      this.picker(),
      this.outcome,
      this.autoResult,
      h('div', { class: 'links-actions', role: 'group', 'aria-label': 'Act on the users below' },
        h('button', { type: 'button', class: 'primary', onclick: (ev) => busy(ev.currentTarget, () => this.saveDrafts()) }, 'Save Added Users'),
        h('button', { type: 'button', onclick: (ev) => busy(ev.currentTarget, () => this.saveOptions()) }, 'Save Users Options'),
        h('button', { type: 'button', onclick: (ev) => busy(ev.currentTarget, () => this.removeSelected()) }, 'Remove Selected Users'),
        this.selectionStatus),
      h('div', { class: 'toolbar' }, field('Filter the lists', this.filter)),
      this.drafted,
      this.linked);
    this.drawLists();
  }

  async loadLinks() {
    const [drafts, saved] = await Promise.all([
      pageAll(this.ctx.client, '/v1/links', { state: 'draft', limit: 500 }),
      pageAll(this.ctx.client, '/v1/links', { state: 'saved', limit: 500 }),
    ]);
    this.drafts = drafts;
    this.saved = saved;
  }

  // users answers the panel users on record at a location, read once.
  users(locationId) {
    if (!this.panelUsers.has(locationId)) {
      const p = this.ctx.client.get(`/v1/locations/${encodeURIComponent(locationId)}/users`).then((r) => r.items);
      p.catch(() => this.panelUsers.delete(locationId));
      this.panelUsers.set(locationId, p);
    }
    return this.panelUsers.get(locationId);
  }

  // loadPanelNames reads the users of the locations the lists show, so
  // that each link names the panel user too.
  async loadPanelNames() {
    const ids = [...new Set([...this.drafts, ...this.saved].map((l) => l.location_id))].slice(0, namedLocations);
    await Promise.all(ids.map(async (id) => {
      try {
        const users = await this.users(id);
        this.names.set(id, new Map(users.map((u) => [u.number, u])));
      } catch {
        // The link is shown by its user number alone.
      }
    }));
  }

  panelUserName(link) {
    const u = this.names.get(link.location_id)?.get(link.user_number);
    return u ? (u.name || u.email) : '';
  }

  say(kind, ...content) {
    fill(this.outcome, h('div', { class: ['alert', `alert-${kind}`], role: kind === 'bad' ? 'alert' : 'status' }, content));
  }

  // picker is the list of locations to work on, with select all.
  picker() {
    const locations = [...this.dir.locations.values()].sort((a, b) => a.name.localeCompare(b.name));
    const count = h('p', { class: 'hint', role: 'status' });
    const all = h('input', { type: 'checkbox', name: 'all-locations', id: 'all-locations' });
    const boxes = locations.map((l) => {
      const cb = h('input', { type: 'checkbox', name: 'location', value: l.id, id: `pick-${l.id}` });
      cb.addEventListener('change', () => {
        if (cb.checked) this.chosen.add(l.id);
        else this.chosen.delete(l.id);
        update();
      });
      return { cb, row: h('li', {}, cb, h('label', { for: cb.id }, l.name, l.group ? h('span', { class: 'muted' }, ` · ${l.group}`) : null)) };
    });
    const update = () => {
      count.textContent = `${this.chosen.size} of ${plural(locations.length, 'location', 'locations')} chosen.`;
      all.checked = locations.length > 0 && this.chosen.size === locations.length;
      all.indeterminate = this.chosen.size > 0 && this.chosen.size < locations.length;
    };
    all.addEventListener('change', () => {
      for (const { cb } of boxes) {
        cb.checked = all.checked;
        if (all.checked) this.chosen.add(cb.value);
        else this.chosen.delete(cb.value);
      }
      update();
    });
    update();
    const buttons = h('div', { class: 'form-actions' },
      h('button', { type: 'button', onclick: (ev) => busy(ev.currentTarget, () => this.load()) }, 'Load External Users'),
      h('button', { type: 'button', class: 'primary', onclick: (ev) => busy(ev.currentTarget, () => this.autoLink()) }, 'Auto Link Users'),
      h('button', { type: 'button', onclick: () => this.linkUser({}) }, 'Link User'));
    return h('section', { class: 'card', 'aria-labelledby': 'pick-title' },
      h('h2', { id: 'pick-title', class: 'card-title' }, 'Locations'),
      locations.length
        ? h('fieldset', { class: 'location-picker' },
          h('legend', { class: 'visually-hidden' }, 'Locations to work on'),
          h('div', { class: 'field field-check' }, all, h('label', { for: 'all-locations' }, 'Select all')),
          h('ul', {}, boxes.map((b) => b.row)),
          count)
        : empty('This account has no locations yet.'),
      h('p', { class: 'hint' }, 'Load External Users reads the chosen panels\' users now; Auto Link Users proposes a link for each of their users whose e-mail is a login\'s.'),
      buttons);
  }

  chosenIds(max) {
    if (!this.chosen.size) {
      this.say('warn', h('p', {}, 'Choose at least one location first.'));
      this.ctx.main.querySelector('input[name="location"]')?.focus();
      return null;
    }
    if (this.chosen.size > max) {
      this.say('warn', h('p', {}, `Choose at most ${max.toLocaleString()} locations at a time.`));
      return null;
    }
    return [...this.chosen];
  }

  async load() {
    const ids = this.chosenIds(10000);
    if (!ids) return;
    let res;
    try {
      res = await this.ctx.client.post('/v1/links/load', { location_ids: ids });
    } catch (err) {
      this.say('bad', h('p', {}, errorText(err)));
      return;
    }
    const progress = h('p', {}, 'Waiting for the panels to answer…');
    const batchLink = h('a', { href: `#/batches/${encodeURIComponent(res.batch.id)}` }, 'Follow its progress');
    this.say('info',
      h('p', {}, `${res.message}: reading the users of ${plural(ids.length, 'location', 'locations')} from their panels. `, batchLink, '.'),
      progress);
    this.follow(res.batch, progress);
  }

  // follow watches a users batch until it is done, then says how it went:
  // Auto Link works on what it loaded.
  follow(batch, progress) {
    const until = Date.now() + batchPollFor;
    const tick = async () => {
      let b;
      try {
        b = await this.ctx.client.get(`/v1/batches/${encodeURIComponent(batch.id)}`);
      } catch {
        b = null;
      }
      if (!this.ctx.current()) return;
      if (b && b.state === 'done') {
        this.panelUsers.clear();
        this.names = new Map();
        const failed = (b.failed || 0) + (b.cancelled || 0);
        progress.textContent = failed
          ? `Done: ${b.succeeded} of ${plural(b.total, 'panel', 'panels')} read; ${failed} could not be read (the batch says why). Auto Link Users works on what was read.`
          : `Done: the users of ${plural(b.total, 'panel', 'panels')} are loaded. Now Auto Link Users.`;
        this.loadPanelNames().then(() => this.ctx.current() && this.drawLists());
        return;
      }
      if (b) progress.textContent = `${b.succeeded + (b.failed || 0) + (b.cancelled || 0)} of ${b.total} done…`;
      if (Date.now() < until) this.later(tick, batchPoll);
      else progress.textContent = 'This is taking a while; the batch page shows how far it is.';
    };
    this.later(tick, batchPoll);
  }

  later(fn, ms) {
    const t = setTimeout(() => {
      this.timers.delete(t);
      fn();
    }, ms);
    this.timers.add(t);
  }

  async autoLink() {
    const ids = this.chosenIds(maxAutoLink);
    if (!ids) return;
    let res;
    try {
      res = await this.ctx.client.post('/v1/links/auto', { location_ids: ids });
    } catch (err) {
      this.say('bad', h('p', {}, errorText(err)));
      return;
    }
    if (!this.ctx.current()) return;
    const known = new Set(this.drafts.map((d) => d.id));
    this.drafts.push(...res.drafts.filter((d) => !known.has(d.id)));
    await this.loadPanelNames();
    if (!this.ctx.current()) return;
    this.drawLists();
    const parts = [
      res.drafts.length
        ? `Proposed ${plural(res.drafts.length, 'link', 'links')}: they are listed under Users to link. Select them and Save Added Users to keep them.`
        : 'No new link could be proposed: no other user\'s e-mail is exactly one login\'s.',
    ];
    if (res.unmatched.length) parts.push(`${plural(res.unmatched.length, 'user has', 'users have')} no e-mail or one that is no login's.`);
    if (res.ambiguous.length) parts.push(`${plural(res.ambiguous.length, 'user matches', 'users match')} more than one way; link them by hand.`);
    this.say(res.drafts.length ? 'good' : 'info', h('p', {}, parts.join(' ')));
    fill(this.autoResult,
      res.ambiguous.length ? this.userList('ambiguous', 'Users with more than one match', res.ambiguous, true) : null,
      res.unmatched.length ? this.userList('unmatched', 'Users without a matching login', res.unmatched, false) : null);
  }

  // userList shows panel users Auto Link left alone, each with a way to
  // link it by hand.
  userList(id, title, users, ambiguous) {
    const head = ['Location', 'User number', 'Name', 'E-mail'];
    if (ambiguous) head.push('Logins it could be', 'Why');
    head.push('');
    return h('details', { class: 'card', open: ambiguous },
      h('summary', {}, h('h2', { id: `${id}-title`, class: 'summary-title' }, `${title} (${users.length})`)),
      h('div', { class: 'table-wrap' }, h('table', { class: 'responsive' },
        h('caption', { class: 'visually-hidden' }, title),
        h('thead', {}, h('tr', {}, head.map((c) => h('th', { scope: 'col' }, c)))),
        h('tbody', {}, users.map((u, i) => {
          const rowId = `${id}-${i}`;
          return h('tr', {},
            h('td', { 'data-label': 'Location' }, u.location_name),
            h('td', { 'data-label': 'User number' }, String(u.user_number)),
            h('td', { 'data-label': 'Name', id: rowId }, u.name || h('span', { class: 'muted' }, '—')),
            h('td', { 'data-label': 'E-mail' }, u.email ? h('span', { class: 'wrap-anywhere' }, u.email) : h('span', { class: 'muted' }, 'None')),
            ambiguous ? h('td', { 'data-label': 'Logins it could be' }, (u.login_ids || []).map((l) => h('div', {}, this.dir.loginName(l)))) : null,
            ambiguous ? h('td', { 'data-label': 'Why' }, u.reason) : null,
            h('td', { 'data-label': '' }, h('button', {
              type: 'button', 'aria-describedby': rowId,
              onclick: () => this.linkUser({ locationId: u.location_id, userNumber: u.user_number, loginId: u.login_ids?.[0] }),
            }, 'Link by hand')));
        })))));
  }

  // linkUser asks for a login, a location and one of its panel users, and
  // proposes that link.
  async linkUser({ locationId, userNumber, loginId }) {
    const logins = [...this.dir.logins.values()].filter((l) => l.state !== 'deactivated')
      .sort((a, b) => (a.name || a.email).localeCompare(b.name || b.email));
    const locations = [...this.dir.locations.values()].sort((a, b) => a.name.localeCompare(b.name));
    const firstLocation = locationId || [...this.chosen][0] || locations[0]?.id || '';
    const login = h('select', { name: 'login_id', required: true },
      h('option', { value: '' }, 'Choose a login'),
      logins.map((l) => h('option', { value: l.id, selected: l.id === loginId }, l.name && l.name !== l.email ? `${l.name} (${l.email})` : l.email)));
    const location = h('select', { name: 'location_id', required: true },
      locations.map((l) => h('option', { value: l.id, selected: l.id === firstLocation }, l.name)));
    const number = h('select', { name: 'user_number', required: true });
    const numberHint = h('p', { class: 'hint', role: 'status' });
    const alert = h('div', { class: 'alert alert-bad', role: 'alert', hidden: true });
    const fillUsers = async (wanted) => {
      fill(number, h('option', { value: '' }, 'Loading…'));
      number.disabled = true;
      numberHint.textContent = '';
      let users;
      try {
        users = await this.users(location.value);
      } catch (err) {
        fill(number, h('option', { value: '' }, '—'));
        numberHint.textContent = errorText(err);
        return;
      }
      const taken = new Set(this.drafts.filter((d) => d.location_id === location.value).map((d) => d.user_number));
      fill(number, h('option', { value: '' }, users.length ? 'Choose a user' : 'No users on record'),
        users.map((u) => {
          const linked = u.login_id || taken.has(u.number);
          const who = [u.name, u.email].filter(Boolean).join(', ') || 'no name';
          return h('option', { value: String(u.number), selected: u.number === wanted, disabled: linked },
            `${u.number} · ${who}${linked ? ' (already linked or proposed)' : ''}`);
        }));
      number.disabled = !users.length;
      numberHint.textContent = users.length
        ? 'The users as the last user sync received them.'
        : 'No users are on record for this location yet: close this, choose the location and Load External Users first.';
    };
    location.addEventListener('change', () => fillUsers(null));
    fillUsers(userNumber);
    const form = h('form', { novalidate: true },
      alert,
      logins.length ? null : h('p', { class: 'alert alert-warn' }, 'There is no active or invited login to link to. Invite the person under Logins first.'),
      field('Login', login),
      field('Location', location),
      field('Panel user', number),
      numberHint);
    let sending = false;
    let draft = null;
    const done = await dialog({
      title: 'Link a user',
      content: form,
      buttons: [
        { label: 'Cancel', value: null },
        {
          label: 'Add link',
          primary: true,
          value: 'added',
          action: async () => {
            if (sending) return false;
            alert.hidden = true;
            fieldErrors(form, null);
            if (!login.value || !location.value || !number.value) {
              alert.textContent = 'Choose a login, a location and one of its users.';
              alert.hidden = false;
              return false;
            }
            sending = true;
            try {
              draft = await this.ctx.client.post('/v1/links', {
                login_id: login.value, location_id: location.value, user_number: Number(number.value),
              });
              return true;
            } catch (err) {
              if (!fieldErrors(form, err)) {
                alert.textContent = err.code === 'conflict'
                  ? 'That user is already linked or proposed, or this login already has a link at this location. A user holds one link, and a person one link per location: remove the other link first.'
                  : errorText(err);
                alert.hidden = false;
              }
              return false;
            } finally {
              sending = false;
            }
          },
        },
      ],
    });
    if (done !== 'added' || !draft || !this.ctx.current()) return;
    this.drafts.push(draft);
    this.selected.add(draft.id);
    await this.loadPanelNames();
    if (!this.ctx.current()) return;
    this.drawLists();
    this.say('good', h('p', {}, `Proposed a link of ${this.dir.loginName(draft.login_id)} to user ${draft.user_number} at ${this.dir.locationName(draft.location_id)}. It is selected under Users to link: Save Added Users to keep it.`));
  }

  // visible answers the links the filter lets through.
  visible(links) {
    const q = (this.filter?.value || '').trim().toLowerCase();
    if (!q) return links;
    return links.filter((l) => [
      this.dir.loginName(l.login_id), this.dir.loginEmail(l.login_id), this.dir.locationName(l.location_id), this.panelUserName(l),
    ].some((s) => s && s.toLowerCase().includes(q)));
  }

  drawLists() {
    this.drawDrafts();
    this.drawSaved();
    this.updateStatus();
  }

  updateStatus() {
    const parts = [];
    if (this.selected.size) parts.push(`${this.selected.size} selected`);
    if (this.edits.size) parts.push(`${plural(this.edits.size, 'user has', 'users have')} unsaved options`);
    this.selectionStatus.textContent = parts.join(' · ');
  }

  selectBox(link, label) {
    const cb = h('input', {
      type: 'checkbox', name: 'select', value: link.id, checked: this.selected.has(link.id), 'aria-label': label,
    });
    cb.addEventListener('change', () => {
      if (cb.checked) this.selected.add(link.id);
      else this.selected.delete(link.id);
      this.syncSelectAll();
      this.updateStatus();
    });
    return cb;
  }

  // selectAllField is a labelled box that selects every row its section
  // shows.
  selectAllField(name, links, label) {
    const cb = h('input', { type: 'checkbox', name, id: `select-${name}`, class: 'select-all' });
    cb.addEventListener('change', () => {
      for (const l of links) {
        if (cb.checked) this.selected.add(l.id);
        else this.selected.delete(l.id);
      }
      const scope = cb.closest('section');
      scope.querySelectorAll('input[name="select"]').forEach((x) => { x.checked = cb.checked; });
      this.updateStatus();
    });
    cb.links = links;
    return h('div', { class: 'field field-check select-all-field' }, cb, h('label', { for: cb.id }, label));
  }

  // syncSelectAll shows each select-all box as all, some or none of its
  // rows selected.
  syncSelectAll() {
    for (const cb of this.ctx.main.querySelectorAll('input.select-all')) {
      const n = cb.links.filter((l) => this.selected.has(l.id)).length;
      cb.checked = n > 0 && n === cb.links.length;
      cb.indeterminate = n > 0 && n < cb.links.length;
    }
  }

  describe(link) {
    return `${this.dir.loginName(link.login_id)} at ${this.dir.locationName(link.location_id)}, user ${link.user_number}`;
  }

  userCell(link) {
    const name = this.panelUserName(link);
    return h('td', { 'data-label': 'Panel user' }, h('span', {}, String(link.user_number), name ? h('span', { class: 'muted' }, ` · ${name}`) : null));
  }

  locationCell(link) {
    return h('td', { 'data-label': 'Location' },
      h('a', { href: `#/locations/${encodeURIComponent(link.location_id)}/users` }, this.dir.locationName(link.location_id)));
  }

  drawDrafts() {
    const shown = this.visible(this.drafts);
    const head = h('div', { class: 'section-head' },
      h('h2', { id: 'drafts-title' }, `Users to link (${this.drafts.length})`),
      h('p', { class: 'muted' }, 'Proposed links, not saved yet. Select the ones to keep and Save Added Users.'));
    if (!this.drafts.length) {
      fill(this.drafted, head, empty('Nothing waits to be saved. Auto Link Users or Link User proposes links.'));
      return;
    }
    if (!shown.length) {
      fill(this.drafted, head, empty('No proposed link matches the filter.'));
      return;
    }
    fill(this.drafted, head,
      this.selectAllField('all-drafts', shown, 'Select all proposed links'),
      h('div', { class: 'table-wrap' }, h('table', { class: 'responsive links-table' },
        h('caption', { class: 'visually-hidden' }, 'Proposed links'),
        h('thead', {}, h('tr', {},
          h('th', { scope: 'col', class: 'select-col' }, h('span', { class: 'visually-hidden' }, 'Select')),
          ['Person', 'Location', 'Panel user'].map((c) => h('th', { scope: 'col' }, c)))),
        h('tbody', {}, shown.map((l) => h('tr', { dataset: { id: l.id } },
          h('td', { 'data-label': 'Select', class: 'select-col' }, this.selectBox(l, `Select ${this.describe(l)}`)),
          h('td', { 'data-label': 'Person' }, personCell(this.dir, l.login_id)),
          this.locationCell(l),
          this.userCell(l)))))));
    this.syncSelectAll();
  }

  drawSaved() {
    const shown = this.visible(this.saved);
    const head = h('div', { class: 'section-head' },
      h('h2', { id: 'saved-title' }, `Linked users (${this.saved.length})`),
      h('p', { class: 'muted' }, 'What a push to a panel (an import, a re-apply, propagation) may write for each person, and where else to put them. Change them, then Save Users Options.'));
    if (!this.saved.length) {
      fill(this.linked, head, empty('No panel user is linked to a login yet.'));
      return;
    }
    if (!shown.length) {
      fill(this.linked, head, empty('No linked user matches the filter.'));
      return;
    }
    const byLogin = new Map();
    for (const l of shown) {
      if (!byLogin.has(l.login_id)) byLogin.set(l.login_id, []);
      byLogin.get(l.login_id).push(l);
    }
    const people = [...byLogin.entries()].sort(([a], [b]) => this.dir.loginName(a).localeCompare(this.dir.loginName(b)));
    fill(this.linked, head,
      this.selectAllField('all-saved', shown, 'Select all linked users'),
      people.map(([loginId, links]) => this.personGroup(loginId, links)));
    this.syncSelectAll();
  }

  personGroup(loginId, links) {
    const nameId = `person-${loginId}`;
    const force = h('button', {
      type: 'button', 'aria-describedby': nameId,
      onclick: (ev) => busy(ev.currentTarget, () => this.forceSync(loginId)),
    }, 'Force sync');
    return h('div', { class: 'link-person' },
      h('div', { class: 'link-person-head' },
        h('h3', { id: nameId }, this.dir.loginName(loginId)),
        this.dir.loginEmail(loginId) ? h('span', { class: 'muted wrap-anywhere' }, this.dir.loginEmail(loginId)) : null,
        force),
      h('div', { class: 'table-wrap' }, h('table', { class: 'responsive links-table' },
        h('caption', { class: 'visually-hidden' }, `Where ${this.dir.loginName(loginId)} is linked`),
        h('thead', {}, h('tr', {},
          h('th', { scope: 'col', class: 'select-col' }, h('span', { class: 'visually-hidden' }, 'Select')),
          ['Location', 'Panel user', 'Keep in sync', 'Also put on'].map((c) => h('th', { scope: 'col' }, c)))),
        h('tbody', {}, links.map((l) => this.savedRow(l))))));
  }

  // savedRow is one saved link with its options; a changed option is kept
  // until Save Users Options sends it.
  savedRow(link) {
    const edit = this.edits.get(link.id) || {};
    const value = (k) => (k in edit ? edit[k] : link.options[k]);
    const tr = h('tr', { dataset: { id: link.id } });
    const changed = () => {
      const next = {};
      for (const k of ['code', 'schedule', 'partitions', 'propagate']) {
        const v = controls[k].type === 'checkbox' ? controls[k].checked : controls[k].value;
        if (v !== link.options[k]) next[k] = v;
      }
      if (Object.keys(next).length) this.edits.set(link.id, next);
      else this.edits.delete(link.id);
      tr.classList.toggle('is-changed', this.edits.has(link.id));
      this.updateStatus();
    };
    const box = (k) => {
      const cb = h('input', { type: 'checkbox', name: k, id: `opt-${k}-${link.id}`, checked: value(k) });
      cb.addEventListener('change', changed);
      return cb;
    };
    const group = this.dir.locationGroup(link.location_id);
    const controls = {
      code: box('code'),
      schedule: box('schedule'),
      partitions: box('partitions'),
      propagate: h('select', { name: 'propagate', id: `opt-propagate-${link.id}`, 'aria-label': `Also put ${this.dir.loginName(link.login_id)} on` },
        Object.entries(propagateLabel).map(([v, text]) => h('option', {
          value: v, selected: value('propagate') === v, disabled: v === 'group' && !group && link.options.propagate !== 'group',
        }, v === 'group' && group ? `All of ${group}` : text))),
    };
    controls.propagate.addEventListener('change', changed);
    const check = (k, text) => h('span', { class: 'option-check' }, controls[k], h('label', { for: controls[k].id }, text));
    tr.classList.toggle('is-changed', this.edits.has(link.id));
    tr.append(
      h('td', { 'data-label': 'Select', class: 'select-col' }, this.selectBox(link, `Select ${this.describe(link)}`)),
      this.locationCell(link),
      this.userCell(link),
      h('td', { 'data-label': 'Keep in sync' },
        h('div', { class: 'option-checks', role: 'group', 'aria-label': `Keep in sync for ${this.describe(link)}` },
          check('code', 'Code'), check('schedule', 'Schedule'), check('partitions', 'Partitions'))),
      h('td', { 'data-label': 'Also put on' }, h('div', { class: 'option-select' }, controls.propagate)));
    return tr;
  }

  async saveDrafts() {
    const ids = this.drafts.filter((d) => this.selected.has(d.id)).map((d) => d.id);
    if (!ids.length) {
      this.say('warn', h('p', {}, this.drafts.length
        ? 'Select the proposed links to save first: tick them under Users to link.'
        : 'Nothing waits to be saved. Auto Link Users or Link User proposes links.'));
      return;
    }
    let res;
    try {
      res = await this.ctx.client.post('/v1/links/save', { ids });
    } catch (err) {
      this.say('bad', h('p', {}, errorText(err), ' The lists have been read again.'));
      await this.reload();
      return;
    }
    if (!this.ctx.current()) return;
    const saved = new Set(res.items.map((l) => l.id));
    this.drafts = this.drafts.filter((d) => !saved.has(d.id));
    this.saved.push(...res.items);
    for (const id of saved) this.selected.delete(id);
    this.drawLists();
    this.say('good', h('p', {}, `Saved ${plural(res.items.length, 'link', 'links')}: each of those panel users now belongs to their login. Nothing was sent to the panels.`));
  }

  async saveOptions() {
    const changes = [...this.edits.entries()].map(([id, options]) => ({ link: this.saved.find((l) => l.id === id), options }))
      .filter((c) => c.link);
    if (!changes.length) {
      this.say('info', h('p', {}, 'No option has changed. Change what is kept in sync for a linked user, then Save Users Options.'));
      return;
    }
    const spreading = changes.filter((c) => c.options.propagate === 'group' || c.options.propagate === 'all');
    if (spreading.length) {
      const ok = await confirm({
        title: 'Put people on other locations?',
        message: h('div', {},
          h('p', {}, 'Saving adds these people as users on the other locations that lack them, without a code (codes are never copied):'),
          h('ul', {}, spreading.map((c) => h('li', {}, `${this.dir.loginName(c.link.login_id)}: ${c.options.propagate === 'group'
            ? `every location of ${this.dir.locationGroup(c.link.location_id) || 'its group'}`
            : 'every location of the account'}`))),
          h('p', {}, 'Each location gets a user import, applied or held for review like any other.')),
        confirmLabel: 'Save and put them there',
      });
      if (!ok) return;
    }
    const done = [];
    const failed = [];
    const batches = [];
    for (const c of changes) {
      try {
        const res = await this.ctx.client.patch(`/v1/links/${encodeURIComponent(c.link.id)}`, { options: c.options });
        const { propagation, ...link } = res;
        const i = this.saved.findIndex((l) => l.id === link.id);
        if (i >= 0) this.saved[i] = link;
        this.edits.delete(link.id);
        done.push(link);
        if (propagation) batches.push({ link, batch: propagation });
      } catch (err) {
        if (err.status === 404) {
          this.saved = this.saved.filter((l) => l.id !== c.link.id);
          this.edits.delete(c.link.id);
        }
        failed.push({ link: c.link, err });
      }
      if (!this.ctx.current()) return;
    }
    // Propagation links the person at the other locations at once: the
    // lists are read again to show those links.
    if (batches.length) await this.reload();
    if (!this.ctx.current()) return;
    this.drawLists();
    const content = [];
    if (done.length) content.push(h('p', {}, `Saved the options of ${plural(done.length, 'linked user', 'linked users')}.`));
    for (const b of batches) {
      content.push(h('p', {}, `Putting ${this.dir.loginName(b.link.login_id)} on ${plural(b.batch.total, 'more location', 'more locations')}: `,
        h('a', { href: `#/batches/${encodeURIComponent(b.batch.id)}` }, 'follow the imports'), '.'));
    }
    for (const f of failed) {
      content.push(h('p', {}, `${this.describe(f.link)}: ${errorText(f.err)}`));
    }
    this.say(failed.length ? 'bad' : 'good', content);
  }

  async removeSelected() {
    const links = [...this.drafts, ...this.saved].filter((l) => this.selected.has(l.id));
    if (!links.length) {
      this.say('warn', h('p', {}, 'Select the users to remove first: tick them in the lists below.'));
      return;
    }
    const savedCount = links.filter((l) => l.state === 'saved').length;
    const ok = await confirm({
      title: `Remove ${plural(links.length, 'link', 'links')}?`,
      message: h('div', {},
        h('ul', { class: 'confirm-list' }, links.slice(0, 12).map((l) => h('li', {}, this.describe(l), l.state === 'draft' ? ' (proposed)' : ''))),
        links.length > 12 ? h('p', {}, `and ${links.length - 12} more.`) : null,
        savedCount
          ? h('p', {}, 'The users stay on their panels with their codes; they are simply no longer linked to the login. People put on other locations by propagation stay there.')
          : h('p', {}, 'Proposed links are dropped; nothing changes on the panels.')),
      confirmLabel: 'Remove',
      danger: true,
    });
    if (!ok) return;
    const failed = [];
    let removed = 0;
    for (const l of links) {
      let gone = true;
      try {
        await this.ctx.client.delete(`/v1/links/${encodeURIComponent(l.id)}`);
      } catch (err) {
        // A link someone else removed meanwhile is gone all the same.
        if (err.status !== 404) {
          gone = false;
          failed.push({ link: l, err });
        }
      }
      if (!this.ctx.current()) return;
      if (gone) {
        removed++;
        this.forget(l.id);
      }
    }
    this.drawLists();
    this.say(failed.length ? 'bad' : 'good',
      removed ? h('p', {}, `Removed ${plural(removed, 'link', 'links')}.`) : null,
      failed.map((f) => h('p', {}, `${this.describe(f.link)}: ${errorText(f.err)}`)));
  }

  async forceSync(loginId) {
    try {
      const res = await this.ctx.client.post(`/v1/logins/${encodeURIComponent(loginId)}/force-sync`);
      const who = this.dir.loginName(loginId);
      this.say('good', h('p', {}, `${res.message}. `, res.flagged
        ? `${plural(res.flagged, 'location', 'locations')} where ${who} is linked will run a full user sync when their panel next checks in.`
        : `Every location where ${who} is linked was already waiting for a full user sync.`));
    } catch (err) {
      this.say('bad', h('p', {}, err.code === 'conflict'
        ? `${this.dir.loginName(loginId)} has no saved link yet: save a link first.`
        : errorText(err)));
    }
  }

  forget(id) {
    this.selected.delete(id);
    this.edits.delete(id);
    this.drafts = this.drafts.filter((d) => d.id !== id);
    this.saved = this.saved.filter((d) => d.id !== id);
  }

  async reload() {
    try {
      await this.loadLinks();
      await this.loadPanelNames();
    } catch {
      return;
    }
    if (!this.ctx.current()) return;
    const ids = new Set([...this.drafts, ...this.saved].map((l) => l.id));
    for (const id of [...this.selected]) if (!ids.has(id)) this.selected.delete(id);
    for (const id of [...this.edits.keys()]) if (!ids.has(id)) this.edits.delete(id);
    this.drawLists();
  }
}
