// Events: the Event Log of one location (chosen at the upper right) or of
// all of them, newest first. New entries arrive live over /v1/realtime;
// after a drop the feed resumes from the last offset shown, so nothing is
// missed or shown twice; older entries page in as the list scrolls.

import { pageAll, qs } from '../api.js';
import { EventFeed } from '../realtime.js';
import { EventList, eventTypes, eventTypeLabel } from '../eventlog.js';
import { h, fill, pageHeader, errorBox, empty, field } from '../ui.js';

const pageSize = 100;

export async function render(ctx) {
  const locationId = ctx.query.get('location') || '';
  const type = ctx.query.get('type') || '';
  const actingAccount = ctx.me.role === 'support' ? ctx.me.account_id : '';

  const locations = await pageAll(ctx.client, '/v1/locations', { limit: 200 });
  if (!ctx.current()) return;
  const names = new Map(locations.map((l) => [l.id, l.name]));

  const picker = h('select', { name: 'location', id: 'events-location' },
    h('option', { value: '' }, 'All locations'),
    locations.map((l) => h('option', { value: l.id, selected: l.id === locationId }, l.name)));
  const typePicker = h('select', { name: 'type', id: 'events-type' },
    h('option', { value: '' }, 'All entries'),
    eventTypes.map((t) => h('option', { value: t, selected: t === type }, eventTypeLabel[t])));
  const go = () => ctx.navigate(`/events${qs({ location: picker.value, type: typePicker.value })}`);
  picker.addEventListener('change', go);
  typePicker.addEventListener('change', go);

  const status = h('span', { class: 'feed-status badge badge-neutral', role: 'status' }, 'Connecting…');
  const list = new EventList({ locationName: (id) => names.get(id) || '' });
  const note = h('div');
  const sentinel = h('div', { class: 'pager' });
  const title = locationId && names.has(locationId) ? `Events · ${names.get(locationId)}` : 'Events';
  fill(ctx.main,
    pageHeader(title, status, field('Location', picker), field('Entries', typePicker)),
    note, list.el, sentinel);

  const filter = { location_id: locationId, type };
  let nextBefore = null;
  let loadingOlder = false;

  // load reads the newest page; the feed continues after its newest offset.
  const load = async () => {
    const page = await ctx.client.get(`/v1/events${qs({ ...filter, order: 'newest', limit: pageSize })}`);
    list.clear();
    list.appendOlder(page.items);
    nextBefore = page.next_before ?? null;
    fill(note, page.items.length ? null : empty('No entries yet. New entries appear here as they happen.'));
    if (page.items.length && !type) return page.items[0].offset;
    // With a type filter, or nothing shown, the feed starts after the
    // newest entry of any type, so it neither misses one written since the
    // page loaded nor replays the log from its start.
    const probe = await ctx.client.get(`/v1/events${qs({ location_id: locationId, order: 'newest', limit: 1 })}`);
    return Math.max(page.items[0]?.offset ?? 0, probe.items[0]?.offset ?? 0);
  };

  let newest;
  try {
    newest = await load();
  } catch (err) {
    fill(note, errorBox(err, () => ctx.app.route()));
    return;
  }
  if (!ctx.current()) return;

  const olderButton = h('button', { type: 'button' }, 'Load older entries');
  const loadOlder = async () => {
    if (loadingOlder) return;
    const before = list.oldest();
    if (nextBefore === null || before === null) return;
    loadingOlder = true;
    try {
      const page = await ctx.client.get(`/v1/events${qs({ ...filter, before, limit: pageSize })}`);
      list.appendOlder(page.items);
      nextBefore = page.next_before ?? null;
    } catch (err) {
      fill(note, errorBox(err, loadOlder));
    } finally {
      loadingOlder = false;
      drawPager();
    }
  };
  const drawPager = () => fill(sentinel, nextBefore !== null ? olderButton : null);
  olderButton.addEventListener('click', loadOlder);
  drawPager();
  const observer = new IntersectionObserver((entries) => {
    if (entries.some((e) => e.isIntersecting)) loadOlder();
  }, { rootMargin: '400px' });
  observer.observe(sentinel);

  // The feed delivers the account's entries (or this location's) after
  // the newest one loaded, so none written in between is missed.
  const feed = new EventFeed(ctx.client, {
    locationIds: locationId ? [locationId] : [],
    accountId: actingAccount,
    after: newest,
    onEvent: (ev) => {
      if (type && ev.type !== type) return;
      if (note.firstChild) fill(note);
      list.addLive(ev);
      // Scrolling older entries back in must start after the trimmed end.
      if (list.size >= list.max) nextBefore = list.oldest();
    },
    onStatus: (s) => {
      const words = { live: 'Live', connecting: 'Connecting…', reconnecting: 'Reconnecting…', closed: 'Not live', error: 'Live' };
      status.textContent = words[s] || s;
      status.className = `feed-status badge ${s === 'live' ? 'badge-good' : 'badge-warn'}`;
    },
    onReset: async () => {
      try {
        await load();
        drawPager();
      } catch (err) {
        fill(note, errorBox(err, () => ctx.app.route()));
      }
    },
  }).start();
  ctx.onCleanup(() => {
    feed.stop();
    list.stop();
    observer.disconnect();
  });
}
