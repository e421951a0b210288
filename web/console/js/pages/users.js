// Users: the remote copy of a location's panel users (never a code), and
// the sync button at the upper right, for this location or All Locations.

import { pageAll } from '../api.js';
import { EventFeed } from '../realtime.js';
import {
  h, fill, pageHeader, errorBox, empty, dialog, timeEl, badge, field, errorText,
} from '../ui.js';
import { canOperate, requestSync } from './locations.js';

const authorityLabel = {
  master: 'Master', standard: 'Standard', arm_only: 'Arm only', duress: 'Duress', guest: 'Guest',
};

export async function render(ctx) {
  const locations = await pageAll(ctx.client, '/v1/locations', { limit: 200 });
  if (!ctx.current()) return;
  if (!locations.length) {
    fill(ctx.main, pageHeader('Users'), empty('This account has no locations yet.'));
    return;
  }
  const location = locations.find((l) => l.id === ctx.params.id);
  if (!location) {
    ctx.navigate(`/locations/${encodeURIComponent(locations[0].id)}/users`);
    return;
  }

  const picker = h('select', { name: 'location', id: 'users-location' },
    locations.map((l) => h('option', { value: l.id, selected: l.id === location.id }, l.name)));
  picker.addEventListener('change', () => ctx.navigate(`/locations/${encodeURIComponent(picker.value)}/users`));
  const syncButton = canOperate(ctx.me)
    ? h('button', { type: 'button', class: 'primary', 'aria-haspopup': 'dialog' }, 'SYNC USERS…')
    : null;
  const outcome = h('div', { class: 'outcome', 'aria-live': 'polite' });
  const table = h('div');
  const synced = h('p', { class: 'muted' });
  fill(ctx.main,
    pageHeader(`Users · ${location.name}`, field('Location', picker), syncButton),
    outcome, synced, table);

  const load = async () => {
    try {
      const res = await ctx.client.get(`/v1/locations/${encodeURIComponent(location.id)}/users`);
      if (!ctx.current()) return;
      fill(synced, res.synced_at ? ['Received from the panel ', timeEl(res.synced_at), '.'] : 'The panel\'s users have not been received yet: tap SYNC USERS.');
      fill(table, usersTable(res.items));
    } catch (err) {
      fill(table, errorBox(err, load));
    }
  };
  await load();

  let batchView = null;
  if (syncButton) {
    syncButton.addEventListener('click', async () => {
      const scope = await chooseScope(location, locations.length);
      if (!scope) return;
      if (scope === 'one') {
        fill(outcome, await requestSync(ctx, location, 'users'));
        return;
      }
      batchView?.stop();
      batchView = new BatchProgress(ctx, outcome);
      batchView.start();
    });
  }

  // The table follows the panel: a users sync that succeeds here, or a
  // change at the keypad, reloads it.
  const feed = new EventFeed(ctx.client, {
    locationIds: [location.id],
    accountId: ctx.me.role === 'support' ? ctx.me.account_id : '',
    onEvent: (ev) => {
      if (ev.type === 'sync.succeeded' || ev.type === 'panel.user_changed') load();
    },
  }).start();
  ctx.onCleanup(() => {
    feed.stop();
    batchView?.stop();
  });
}

function usersTable(users) {
  if (!users.length) return empty('No users on record for this panel.');
  const head = ['Number', 'Name', 'E-mail', 'Authority', 'Partitions', 'Access schedule', 'Code', 'Linked'];
  return h('div', { class: 'table-wrap' }, h('table', { class: 'responsive' },
    h('caption', { class: 'visually-hidden' }, 'Panel users'),
    h('thead', {}, h('tr', {}, head.map((c) => h('th', { scope: 'col' }, c)))),
    h('tbody', {}, users.map((u) => h('tr', {},
      h('td', { 'data-label': 'Number' }, String(u.number)),
      h('td', { 'data-label': 'Name' }, u.name || h('span', { class: 'muted' }, 'No name')),
      h('td', { 'data-label': 'E-mail' }, u.email || '—'),
      h('td', { 'data-label': 'Authority' }, authorityLabel[u.authority] || u.authority),
      h('td', { 'data-label': 'Partitions' }, (u.partitions || []).join(', ') || '—'),
      h('td', { 'data-label': 'Access schedule' }, u.access_schedule || 'Always'),
      h('td', { 'data-label': 'Code' }, u.has_code ? 'Set' : badge('No code', 'warn')),
      h('td', { 'data-label': 'Linked' }, u.login_id ? 'Yes' : 'No'))))));
}

// chooseScope asks whether to sync this location or All Locations.
async function chooseScope(location, count) {
  const one = h('input', { type: 'radio', name: 'scope', value: 'one', id: 'scope-one', checked: true });
  const all = h('input', { type: 'radio', name: 'scope', value: 'all', id: 'scope-all' });
  const content = h('fieldset', { class: 'scope-choice' },
    h('legend', {}, 'Sync the users of'),
    h('div', { class: 'field field-check' }, one, h('label', { for: one.id }, `This location only (${location.name})`)),
    h('div', { class: 'field field-check' }, all, h('label', { for: all.id }, `All Locations (${count})`)));
  const value = await dialog({
    title: 'SYNC USERS',
    content,
    buttons: [
      { label: 'Cancel', value: null },
      { label: 'Start sync', primary: true, value: 'chosen' },
    ],
  });
  if (value !== 'chosen') return null;
  return all.checked ? 'all' : 'one';
}

// BatchProgress starts an All Locations users sync and shows its progress
// until it is done, then its summary.
class BatchProgress {
  constructor(ctx, box) {
    this.ctx = ctx;
    this.box = box;
    this.batch = null;
    this.feed = null;
    this.timer = null;
  }

  async start() {
    const { ctx } = this;
    let res;
    try {
      res = await ctx.client.post('/v1/sync', { kind: 'users', scope: 'all' });
    } catch (err) {
      fill(this.box, h('div', { class: 'alert alert-bad', role: 'alert' }, h('p', {}, errorText(err))));
      return;
    }
    this.batch = res.batch;
    this.message = res.message;
    this.draw();
    // Batch entries in the Event Log say when to read the batch again;
    // a slow poll covers a feed that is reconnecting.
    this.feed = new EventFeed(ctx.client, {
      accountId: ctx.me.role === 'support' ? ctx.me.account_id : '',
      onEvent: (ev) => {
        if (ev.data?.batch_id === this.batch.id) this.reload();
      },
    }).start();
    this.timer = setInterval(() => this.reload(), 3000);
  }

  async reload() {
    try {
      this.batch = await this.ctx.client.get(`/v1/batches/${encodeURIComponent(this.batch.id)}`);
    } catch {
      return;
    }
    if (!this.ctx.current()) return;
    this.draw();
    if (this.batch.state === 'done') this.stop();
  }

  draw() {
    const b = this.batch;
    const done = b.succeeded + b.failed + b.cancelled;
    const finished = b.state === 'done';
    const summary = [`${b.succeeded} succeeded`, `${b.failed} failed`, b.cancelled ? `${b.cancelled} cancelled` : null]
      .filter(Boolean).join(', ');
    fill(this.box, h('section', { class: ['alert', finished && b.failed ? 'alert-warn' : 'alert-info', 'batch-progress'], 'aria-labelledby': 'batch-title' },
      h('h2', { id: 'batch-title' }, finished ? 'All Locations: user sync finished' : (this.message || 'User sync started for All Locations')),
      h('p', {}, finished
        ? `${summary} of ${b.total} locations.`
        : `Each location's result appears in the Event Log as it finishes. ${done} of ${b.total} done.`),
      h('progress', { max: String(b.total || 1), value: String(done), 'aria-label': 'Locations done' }),
      finished ? null : h('p', { class: 'batch-summary', role: 'status' }, summary),
      h('div', { class: 'form-actions' },
        h('button', { type: 'button', class: 'primary', onclick: () => this.ctx.navigate('/events') }, 'GO TO EVENTS'),
        h('a', { class: 'button', href: `#/batches/${encodeURIComponent(b.id)}` }, 'View the batch'))));
  }

  stop() {
    this.feed?.stop();
    clearInterval(this.timer);
  }
}
