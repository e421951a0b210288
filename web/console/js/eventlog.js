// EventList shows Event Log entries newest first and keeps up with a fast
// feed: arrivals are queued and written to the page once per animation
// frame, and the list never holds more than a bounded number of rows.

import { h, timeEl } from './ui.js';

export const severityLabel = { info: 'Info', warning: 'Warning', error: 'Error' };

// Entry types people filter by, in the order a menu shows them, with the
// words the menu shows.
export const eventTypeLabel = {
  'sync.requested': 'Sync requested',
  'sync.succeeded': 'Sync succeeded',
  'sync.failed': 'Sync Failure',
  'sync.retrying': 'Sync retrying',
  'sync.held': 'Sync held for apply',
  'sync.cancelled': 'Sync cancelled',
  'sync.force_requested': 'Sync on next check-in',
  'batch.progress': 'All Locations progress',
  'batch.finished': 'All Locations finished',
  'panel.connected': 'Panel connected',
  'panel.disconnected': 'Panel disconnected',
  'panel.authorization_expired': 'Panel authorization expired',
  'panel.checkin': 'Panel check-in',
  'panel.armed': 'Armed',
  'panel.disarmed': 'Disarmed',
  'panel.alarm': 'Alarm',
  'panel.trouble': 'Trouble',
  'panel.user_changed': 'User changed at the keypad',
  'link.saved': 'User linked',
  'link.removed': 'User link removed',
  'runs.stranded': 'Runs waiting for a server',
};

export const eventTypes = Object.keys(eventTypeLabel);

export class EventList {
  // options.max bounds the rows kept; options.describe(event) adds text
  // after the location (the account's name on the support log);
  // options.accept(event) filters what is shown.
  // options.openRun(event), when given, opens an entry's run instead of a
  // plain link (support staff first act on the run's account).
  constructor({ max = 1000, locationName = () => '', describe = () => null, accept = () => true, openRun = null } = {}) {
    this.max = max;
    this.openRun = openRun;
    this.locationName = locationName;
    this.describe = describe;
    this.accept = accept;
    this.el = h('ol', { class: 'event-list', 'aria-label': 'Event Log entries, newest first' });
    this.queue = [];
    this.frame = 0;
    this.keys = new Set();
  }

  // key identifies an entry across accounts (offsets are per account).
  static key(ev) {
    return `${ev.account_id}:${ev.offset}`;
  }

  row(ev, fresh) {
    const where = ev.location_name || this.locationName(ev.location_id) || (ev.location_id ? '' : 'Account');
    return h('li', {
      class: ['event', `sev-${ev.severity}`, fresh ? 'is-new' : ''],
      dataset: { offset: String(ev.offset), account: ev.account_id, type: ev.type },
    },
    h('span', { class: 'when' }, timeEl(ev.occurred_at)),
    h('span', { class: 'what' },
      ev.severity !== 'info' ? h('span', { class: 'visually-hidden' }, `${severityLabel[ev.severity]}: `) : null,
      ev.message,
      ev.run_id ? [' ', h('a', {
        href: `#/runs/${encodeURIComponent(ev.run_id)}`,
        class: 'run-link',
        onclick: this.openRun ? (click) => {
          click.preventDefault();
          this.openRun(ev);
        } : null,
      }, 'View run')] : null),
    h('span', { class: 'where' }, where, this.describe(ev)));
  }

  // appendOlder adds entries below the ones shown (scrolling back); they
  // arrive newest first.
  appendOlder(events) {
    const frag = document.createDocumentFragment();
    for (const ev of events) {
      const key = EventList.key(ev);
      if (this.keys.has(key) || !this.accept(ev)) continue;
      this.keys.add(key);
      frag.append(this.row(ev, false));
    }
    this.el.append(frag);
  }

  // addLive queues an entry that just happened; it appears at the top on
  // the next frame.
  addLive(ev) {
    this.queue.push(ev);
    if (!this.frame) this.frame = requestAnimationFrame(() => this.flush());
  }

  flush() {
    this.frame = 0;
    const batch = this.queue.splice(0);
    const frag = document.createDocumentFragment();
    // The batch is oldest first; the list is newest first.
    for (let i = batch.length - 1; i >= 0; i--) {
      const ev = batch[i];
      const key = EventList.key(ev);
      if (this.keys.has(key) || !this.accept(ev)) continue;
      this.keys.add(key);
      frag.append(this.row(ev, batch.length < 20));
    }
    this.el.prepend(frag);
    this.trim();
  }

  // trim drops the oldest rows beyond the bound; oldest() then tells the
  // page where to page back from.
  trim() {
    while (this.el.childElementCount > this.max) {
      const last = this.el.lastElementChild;
      this.keys.delete(`${last.dataset.account}:${last.dataset.offset}`);
      last.remove();
    }
  }

  // oldest is the offset of the bottom row, or null.
  oldest() {
    const last = this.el.lastElementChild;
    return last ? Number(last.dataset.offset) : null;
  }

  get size() {
    return this.el.childElementCount;
  }

  clear() {
    this.queue = [];
    this.keys.clear();
    this.el.replaceChildren();
  }

  stop() {
    if (this.frame) cancelAnimationFrame(this.frame);
    this.frame = 0;
  }
}
