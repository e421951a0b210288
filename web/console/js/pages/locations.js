// Locations: every location of the account with its panel and sync state,
// kept current by the Event Log feed, and SYNC USERS, SYNC PANEL and
// REFRESH in each location's detail.

import { pageAll } from '../api.js';
import { EventFeed } from '../realtime.js';
import {
  h, fill, timeEl, ago, badge, busy, errorText, pageHeader, empty, errorBox,
  syncStatusLabel, connectionLabel, armedLabel, statusTone,
} from '../ui.js';

// Which events change what a location row shows.
const refreshingTypes = new Set([
  'sync.requested', 'sync.succeeded', 'sync.failed', 'sync.held', 'sync.cancelled', 'sync.force_requested',
  'panel.connected', 'panel.disconnected', 'panel.armed', 'panel.disarmed', 'panel.alarm', 'panel.checkin',
]);

export const syncKinds = [
  { kind: 'users', label: 'SYNC USERS' },
  { kind: 'panel', label: 'SYNC PANEL' },
  { kind: 'refresh', label: 'REFRESH' },
];

export function canOperate(me) {
  return me && ['owner', 'admin', 'member'].includes(me.role);
}

export function canAdminister(me) {
  return me && ['owner', 'admin'].includes(me.role);
}

// requestSync taps one of the three buttons for a location and answers
// an element that tells the outcome in words, with the way to the Events
// page.
export async function requestSync(ctx, location, kind) {
  try {
    const res = await ctx.client.post(`/v1/locations/${encodeURIComponent(location.id)}/sync`, { kind });
    const text = res.deduplicated
      ? `${res.message || 'Already in progress'}: a ${kindWords(kind)} was already queued or running here, so no second one was started.`
      : res.message;
    return h('div', { class: 'alert alert-good sync-outcome', role: 'status' },
      h('p', {}, text),
      h('p', {}, 'Its progress and result appear in the Event Log. ',
        h('a', { href: `#/events?location=${encodeURIComponent(location.id)}` }, 'Go to Events')));
  } catch (err) {
    return h('div', { class: 'alert alert-bad sync-outcome', role: 'alert' },
      h('p', {}, errorText(err)));
  }
}

function kindWords(kind) {
  return { users: 'user sync', panel: 'panel sync', refresh: 'refresh' }[kind] || 'sync';
}

export async function render(ctx) {
  const list = h('div', { class: 'location-list', id: 'locations' });
  const expandAll = h('button', { type: 'button', 'aria-controls': 'locations' }, 'EXPAND ALL');
  const feedStatus = h('span', { class: 'feed-status muted', role: 'status' });
  const filter = h('input', { type: 'search', name: 'q', placeholder: 'Filter by name or group', 'aria-label': 'Filter locations' });
  fill(ctx.main,
    pageHeader('Locations', feedStatus, expandAll),
    h('div', { class: 'toolbar' }, filter),
    list);

  let locations;
  try {
    locations = await pageAll(ctx.client, '/v1/locations', { limit: 200 });
  } catch (err) {
    fill(list, errorBox(err, () => ctx.app.route()));
    return;
  }
  if (!ctx.current()) return;
  const rows = new Map();
  const expanded = new Set();

  const draw = () => {
    const q = filter.value.trim().toLowerCase();
    const shown = locations.filter((l) => !q || l.name.toLowerCase().includes(q) || (l.group || '').toLowerCase().includes(q));
    if (!shown.length) {
      fill(list, empty(locations.length ? 'No location matches the filter.' : 'This account has no locations yet.'));
      return;
    }
    fill(list, shown.map((l) => {
      let row = rows.get(l.id);
      if (!row) {
        row = new LocationRow(ctx, l, expanded);
        rows.set(l.id, row);
      }
      return row.el;
    }));
  };
  filter.addEventListener('input', draw);
  draw();

  expandAll.addEventListener('click', () => {
    const open = expandAll.textContent === 'EXPAND ALL';
    for (const row of rows.values()) row.setOpen(open);
    expandAll.textContent = open ? 'COLLAPSE ALL' : 'EXPAND ALL';
  });

  // A location is read again when an event about it arrives; several
  // events in quick succession cost one read.
  const pending = new Set();
  let timer = null;
  const reread = () => {
    timer = null;
    const ids = [...pending];
    pending.clear();
    for (const id of ids) {
      ctx.client.get(`/v1/locations/${encodeURIComponent(id)}`).then((fresh) => {
        const i = locations.findIndex((l) => l.id === id);
        if (i >= 0) locations[i] = fresh;
        rows.get(id)?.update(fresh);
      }).catch(() => {});
    }
  };
  const feed = new EventFeed(ctx.client, {
    accountId: ctx.me.role === 'support' ? ctx.me.account_id : '',
    onEvent: (ev) => {
      if (!ev.location_id || !refreshingTypes.has(ev.type) || !rows.has(ev.location_id)) return;
      pending.add(ev.location_id);
      if (!timer) timer = setTimeout(reread, 150);
    },
    onStatus: (status) => {
      feedStatus.textContent = { live: 'Live', connecting: 'Connecting…', reconnecting: 'Reconnecting…', closed: 'Not live' }[status] || '';
    },
    onReset: () => {
      for (const l of locations) pending.add(l.id);
      reread();
    },
  }).start();
  // "Last seen 3 minutes ago" is worded relative to now, so the rows are
  // redrawn each minute to keep it true.
  const ticker = setInterval(() => rows.forEach((row) => row.tick()), 60000);
  ctx.onCleanup(() => {
    feed.stop();
    clearTimeout(timer);
    clearInterval(ticker);
  });
}

// focusKey names a focused control of a row by what survives a redraw.
function focusKey(el) {
  if (el.dataset.kind) return `button[data-kind="${el.dataset.kind}"]`;
  if (el.classList.contains('location-summary')) return '.location-summary';
  if (el.getAttribute('href')) return `a[href="${CSS.escape(el.getAttribute('href'))}"]`;
  return null;
}

// LocationRow is one location: a summary that opens its detail.
class LocationRow {
  constructor(ctx, location, expanded) {
    this.ctx = ctx;
    this.expanded = expanded;
    this.location = location;
    this.el = h('section', { class: 'location', 'aria-labelledby': `loc-${location.id}` });
    this.detailId = `loc-detail-${location.id}`;
    this.outcome = null;
    this.render();
  }

  setOpen(open) {
    if (open) this.expanded.add(this.location.id);
    else this.expanded.delete(this.location.id);
    this.render();
  }

  update(location) {
    this.location = location;
    this.render();
  }

  tick() {
    for (const el of this.el.querySelectorAll('[data-ago]')) el.textContent = `Last seen ${ago(el.dataset.ago)}`;
  }

  // render redraws the row. A person working in it keeps their place: the
  // control that had focus has it again afterwards.
  render() {
    const active = this.el.contains(document.activeElement) ? focusKey(document.activeElement) : null;
    this.draw();
    if (active) this.el.querySelector(active)?.focus();
  }

  draw() {
    const l = this.location;
    const open = this.expanded.has(l.id);
    const status = l.sync?.status || 'never';
    this.el.className = ['location', status === 'sync_failure' ? 'is-failure' : '', status === 'held' ? 'is-held' : ''].filter(Boolean).join(' ');
    this.el.dataset.status = status;
    this.el.dataset.connection = l.panel?.connection || '';
    const summary = h('button', {
      type: 'button', class: 'location-summary', 'aria-expanded': String(open), 'aria-controls': this.detailId,
      onclick: () => this.setOpen(!open),
    },
    h('span', { class: 'name', id: `loc-${l.id}` }, l.name),
    h('span', { class: 'state' },
      badge(syncStatusLabel[status] || status, statusTone(status)),
      badge(connectionLabel[l.panel?.connection] || 'Unknown', l.panel?.connection === 'connected' ? 'good' : 'bad')),
    h('span', { class: 'facts' },
      l.group ? h('span', {}, l.group) : null,
      h('span', {}, armedLabel[l.panel?.armed_state ?? ''] || l.panel?.armed_state),
      h('span', { dataset: l.panel?.last_seen_at ? { ago: l.panel.last_seen_at } : {} }, 'Last seen ', l.panel?.last_seen_at ? ago(l.panel.last_seen_at) : 'never')));
    const failure = status === 'sync_failure' && l.sync?.last_failure
      ? h('p', { class: 'sync-failure-message' }, 'Sync Failure: ', l.sync.last_failure.message)
      : null;
    const held = status === 'held'
      ? h('p', { class: 'held-message' }, 'A user sync waits for someone to apply it. ',
        l.sync?.held_run_id ? h('a', { href: `#/runs/${encodeURIComponent(l.sync.held_run_id)}` }, 'Review the held run') : h('a', { href: `#/runs?location=${encodeURIComponent(l.id)}&state=awaiting_apply` }, 'Review held runs'))
      : null;
    const children = [summary];
    if (!open && (failure || held)) {
      children.push(h('div', { class: 'location-detail' }, failure, held));
    }
    if (open) children.push(this.detail(failure, held));
    fill(this.el, children);
  }

  detail(failure, held) {
    const l = this.location;
    const ctx = this.ctx;
    const outcomeBox = h('div', { class: 'outcome', 'aria-live': 'polite' }, this.outcome);
    const buttons = canOperate(ctx.me)
      ? h('div', { class: 'sync-buttons', role: 'group', 'aria-label': `Sync ${l.name}` },
        syncKinds.map(({ kind, label }) => h('button', {
          type: 'button', class: kind === 'users' ? 'primary' : '', dataset: { kind },
          onclick: (ev) => busy(ev.currentTarget, async () => {
            this.outcome = await requestSync(ctx, l, kind);
            fill(outcomeBox, this.outcome);
          }),
        }, label)))
      : null;
    const sync = l.sync || {};
    return h('div', { class: 'location-detail', id: this.detailId },
      failure, held,
      buttons,
      outcomeBox,
      h('dl', {},
        h('dt', {}, 'Panel'), h('dd', {}, l.panel?.serial || '—'),
        h('dt', {}, 'Connection'), h('dd', {}, connectionLabel[l.panel?.connection] || '—'),
        h('dt', {}, 'Armed state'), h('dd', {}, armedLabel[l.panel?.armed_state ?? ''] || l.panel?.armed_state),
        h('dt', {}, 'Last seen'), h('dd', {}, timeEl(l.panel?.last_seen_at)),
        h('dt', {}, 'Users synced'), h('dd', {}, timeEl(sync.users_synced_at)),
        h('dt', {}, 'Panel synced'), h('dd', {}, timeEl(sync.panel_synced_at)),
        h('dt', {}, 'Refreshed'), h('dd', {}, timeEl(sync.refreshed_at)),
        h('dt', {}, 'Next scheduled sync'), h('dd', {}, timeEl(sync.next_scheduled_at)),
        sync.force_pending ? [h('dt', {}, 'On next check-in'), h('dd', {}, 'A full user sync')] : null),
      h('p', { class: 'page-actions' },
        h('a', { class: 'button', href: `#/locations/${encodeURIComponent(l.id)}/users` }, 'Users'),
        h('a', { class: 'button', href: `#/events?location=${encodeURIComponent(l.id)}` }, 'Events'),
        h('a', { class: 'button', href: `#/runs?location=${encodeURIComponent(l.id)}` }, 'Sync runs'),
        h('a', { class: 'button', href: `#/locations/${encodeURIComponent(l.id)}/settings` }, 'Settings')));
  }
}
