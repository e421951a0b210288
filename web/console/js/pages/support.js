// Support staff's live log: the accounts that granted them access, and one
// Event Log across all of them, filtered by account, location, type and
// severity, which can be paused to read and resumed. Read-only.

import { pageAll, qs } from '../api.js';
import { EventFeed } from '../realtime.js';
import { EventList, eventTypes, eventTypeLabel, severityLabel } from '../eventlog.js';
import { h, fill, pageHeader, empty, field, timeEl, errorText } from '../ui.js';

const kept = 1000;
const history = 50;

export async function render(ctx) {
  // The grants are the home login's; the acting account does not matter.
  const me = await ctx.client.get('/v1/me', { account: '' });
  if (!ctx.current()) return;
  const grants = me.grants || [];
  if (!grants.length) {
    fill(ctx.main, pageHeader('Live log'),
      empty('No customer account has granted you access at the moment. An owner or administrator of an account grants it from their Logins page.'));
    return;
  }
  const accountName = new Map(grants.map((g) => [g.account_id, g.account_name]));
  const locationName = new Map();

  const filters = {
    account: h('select', { name: 'account' }, h('option', { value: '' }, 'All accounts'),
      grants.map((g) => h('option', { value: g.account_id }, g.account_name))),
    location: h('select', { name: 'location' }, h('option', { value: '' }, 'All locations')),
    type: h('select', { name: 'type' }, h('option', { value: '' }, 'All types'), eventTypes.map((t) => h('option', { value: t }, eventTypeLabel[t]))),
    severity: h('select', { name: 'severity' }, h('option', { value: '' }, 'Any severity'),
      Object.entries(severityLabel).map(([v, l]) => h('option', { value: v }, l))),
  };
  const accept = (ev) => (!filters.account.value || ev.account_id === filters.account.value)
    && (!filters.location.value || ev.location_id === filters.location.value)
    && (!filters.type.value || ev.type === filters.type.value)
    && (!filters.severity.value || ev.severity === filters.severity.value);

  const list = new EventList({
    max: kept,
    accept,
    locationName: (id) => locationName.get(id) || '',
    describe: (ev) => h('span', { class: 'account-name' }, ` · ${accountName.get(ev.account_id) || ''}`),
    openRun: (ev) => actOn(ev.account_id, `/runs/${encodeURIComponent(ev.run_id)}`),
  });
  // actOn makes the console act on a granting account, read-only, and
  // opens one of its pages.
  const actOn = async (accountId, path) => {
    ctx.client.setActingAccount(accountId);
    await ctx.app.loadMe();
    ctx.navigate(path);
  };

  // Every entry received is kept (up to the bound), newest last, so that a
  // filter change or a resume redraws from it without asking the server.
  const received = [];
  let paused = false;
  let waiting = 0;
  const pauseButton = h('button', { type: 'button', 'aria-pressed': 'false' }, 'Pause');
  const pausedNote = h('span', { class: 'muted', role: 'status' });
  const status = h('span', { class: 'feed-status badge badge-neutral', role: 'status' }, 'Connecting…');
  const redraw = () => {
    list.clear();
    list.appendOlder([...received].reverse());
  };
  pauseButton.addEventListener('click', () => {
    paused = !paused;
    pauseButton.textContent = paused ? 'Resume' : 'Pause';
    pauseButton.setAttribute('aria-pressed', String(paused));
    if (!paused) {
      waiting = 0;
      redraw();
    }
    pausedNote.textContent = paused ? 'Paused: new entries wait until you resume.' : '';
  });
  for (const f of Object.values(filters)) f.addEventListener('change', redraw);
  filters.account.addEventListener('change', () => drawLocations());

  const grantsTable = h('div', { class: 'table-wrap' }, h('table', { class: 'responsive' },
    h('caption', { class: 'visually-hidden' }, 'Accounts that granted you access'),
    h('thead', {}, h('tr', {}, ['Account', 'Access until', ''].map((c) => h('th', { scope: 'col' }, c)))),
    h('tbody', {}, grants.map((g) => h('tr', {},
      h('td', { 'data-label': 'Account' }, g.account_name),
      h('td', { 'data-label': 'Access until' }, g.expires_at ? timeEl(g.expires_at) : 'Until revoked'),
      h('td', { 'data-label': '' }, h('button', {
        type: 'button',
        onclick: () => actOn(g.account_id, '/locations'),
      }, `Open ${g.account_name}`)))))));

  fill(ctx.main,
    pageHeader('Live log', status, pauseButton),
    h('h2', {}, 'Accounts that granted you access'),
    grantsTable,
    h('h2', {}, 'Event Log across these accounts'),
    h('div', { class: 'toolbar', role: 'group', 'aria-label': 'Filters' },
      field('Account', filters.account), field('Location', filters.location),
      field('Type', filters.type), field('Severity', filters.severity)),
    pausedNote,
    list.el);

  const drawLocations = () => {
    const chosen = filters.location.value;
    const options = [...locationName.entries()]
      .filter(([, v]) => v)
      .sort((a, b) => a[1].localeCompare(b[1]));
    fill(filters.location, h('option', { value: '' }, 'All locations'),
      options.map(([id, name]) => h('option', { value: id, selected: id === chosen }, name)));
  };

  const feeds = [];
  const live = new Map();
  const showStatus = () => {
    const states = [...live.values()];
    const allLive = states.length === grants.length && states.every((s) => s === 'live');
    status.textContent = allLive ? 'Live' : states.includes('reconnecting') ? 'Reconnecting…' : 'Connecting…';
    status.className = `feed-status badge ${allLive ? 'badge-good' : 'badge-warn'}`;
  };
  const receive = (ev) => {
    if (ev.location_id && ev.location_name) locationName.set(ev.location_id, ev.location_name);
    received.push(ev);
    if (received.length > kept) received.splice(0, received.length - kept);
    if (paused) {
      waiting++;
      pausedNote.textContent = `Paused: ${waiting} new ${waiting === 1 ? 'entry waits' : 'entries wait'} until you resume.`;
      return;
    }
    list.addLive(ev);
  };

  await Promise.all(grants.map(async (g) => {
    const opts = { account: g.account_id };
    let after = 0;
    try {
      const [locations, page] = await Promise.all([
        pageAll(ctx.client, '/v1/locations', { limit: 200 }, 5000, opts),
        ctx.client.get(`/v1/events${qs({ order: 'newest', limit: history })}`, opts),
      ]);
      for (const l of locations) locationName.set(l.id, l.name);
      received.push(...page.items.reverse());
      after = page.items.length ? page.items[page.items.length - 1].offset : 0;
    } catch (err) {
      list.el.before(h('p', { class: 'alert alert-bad', role: 'alert' }, `${g.account_name}: ${errorText(err)}`));
    }
    if (!ctx.current()) return;
    feeds.push(new EventFeed(ctx.client, {
      accountId: g.account_id,
      after,
      onEvent: receive,
      onStatus: (s) => {
        live.set(g.account_id, s);
        showStatus();
      },
    }).start());
  }));
  received.sort((a, b) => a.occurred_at.localeCompare(b.occurred_at) || a.offset - b.offset);
  drawLocations();
  redraw();
  ctx.onCleanup(() => {
    feeds.forEach((f) => f.stop());
    list.stop();
  });
}
