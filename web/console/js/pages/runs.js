// Sync runs: the log of every run of the account, filtered by location,
// kind, state or batch, with a second view listing the All-Locations
// batches. Both stay current through the Event Log feed. The row builders
// here are shared with the run and batch pages.

import { qs, pageAll } from '../api.js';
import { EventFeed } from '../realtime.js';
import {
  h, fill, field, busy, timeEl, badge, pageHeader, empty, errorBox,
  runStateLabel, kindLabel, runTone,
} from '../ui.js';

export const triggerLabel = {
  app: 'Requested in the app',
  schedule: 'Scheduled',
  checkin: 'Panel check-in',
  api: 'API key',
  reapply: 'Re-apply',
};

export const finalStates = new Set(['succeeded', 'failed', 'cancelled']);

// canAudit says whether the audit log answers this login: owners and
// admins, and support staff acting on a customer account.
export function canAudit(me) {
  if (!me) return false;
  if (me.role === 'owner' || me.role === 'admin') return true;
  return me.role === 'support' && Boolean(me.account_id) && me.account_id !== me.home_account_id;
}

// feedAccount is the account a support login watches under its grant;
// everyone else watches their own.
export function feedAccount(me) {
  return me?.role === 'support' ? me.account_id : '';
}

export const feedStatusText = {
  live: 'Live', connecting: 'Connecting…', reconnecting: 'Reconnecting…', closed: 'Not live', error: 'Not live',
};

// locationNames reads the names of the account's locations, for lists
// that carry only a location's id. A failure leaves the ids showing.
export async function locationNames(client) {
  try {
    const all = await pageAll(client, '/v1/locations', { limit: 200 });
    return new Map(all.map((l) => [l.id, l]));
  } catch {
    return new Map();
  }
}

// changesText puts a run's counts in words; a run that changed nothing
// yet says so with a dash.
export function changesText(run) {
  const c = run.changes || {};
  const parts = [];
  if (c.added) parts.push(`${c.added} added`);
  if (c.updated) parts.push(`${c.updated} updated`);
  if (c.removed) parts.push(`${c.removed} removed`);
  if (!parts.length) {
    if (finalStates.has(run.state) && run.kind !== 'refresh') return c.unchanged ? 'No change' : '—';
    return '—';
  }
  return parts.join(', ');
}

export function runStateBadge(run) {
  let text = runStateLabel[run.state] || run.state;
  if (run.state === 'queued' && run.error) text = 'Queued to retry';
  return badge(text, runTone(run.state));
}

// sentence makes a server's message a sentence: a capital first letter
// and a full stop at the end.
export function sentence(text) {
  if (!text) return '';
  const s = text.charAt(0).toUpperCase() + text.slice(1);
  return /[.!?]$/.test(s) ? s : `${s}.`;
}

// runErrorText is a run's problem as a sentence.
export function runErrorText(run) {
  const msg = run.error?.message;
  if (!msg) return '';
  return run.state === 'queued' ? `Last attempt: ${sentence(msg)}` : sentence(msg);
}

export const runColumns = ['Location', 'Sync', 'State', 'Changes', 'When', 'Problem', ''];

// whenCell says when something was asked for, by whom, and when it ended.
function whenCell(requestedAt, by, finishedAt) {
  return h('td', { 'data-label': 'When' }, h('div', {},
    h('span', { class: 'line' }, timeEl(requestedAt)),
    by ? h('span', { class: 'line muted small by' }, 'by ', by) : null,
    finishedAt ? h('span', { class: 'line muted small' }, 'finished ', timeEl(finishedAt)) : null));
}

// runRow is one run as a table row; names maps location ids to locations.
export function runRow(run, names) {
  const locName = names.get(run.location_id)?.name || 'Unknown location';
  const nameId = `run-${run.id}-where`;
  const tr = h('tr', { dataset: { runId: run.id, state: run.state }, class: run.state === 'failed' ? 'row-bad' : run.state === 'awaiting_apply' ? 'row-warn' : '' },
    h('td', { 'data-label': 'Location', id: nameId }, locName),
    h('td', { 'data-label': 'Sync' }, h('div', {},
      h('span', { class: 'line' }, kindLabel[run.kind] || run.kind, run.mode === 'full' && run.kind === 'users' ? ' (full)' : ''),
      h('span', { class: 'line muted small' }, triggerLabel[run.trigger] || run.trigger))),
    h('td', { 'data-label': 'State' }, runStateBadge(run)),
    h('td', { 'data-label': 'Changes' }, changesText(run)),
    whenCell(run.created_at, run.requested_by, run.finished_at),
    h('td', { 'data-label': 'Problem', class: run.error ? 'problem-text' : '' }, runErrorText(run) || h('span', { class: 'muted' }, '—')),
    h('td', { 'data-label': '' }, h('a', { href: `#/runs/${encodeURIComponent(run.id)}`, 'aria-describedby': nameId }, 'View…')));
  return tr;
}

export function tableOf(columns, tbody, caption) {
  return h('div', { class: 'table-wrap' },
    h('table', { class: 'responsive' },
      caption ? h('caption', { class: 'visually-hidden' }, caption) : null,
      h('thead', {}, h('tr', {}, columns.map((c) => h('th', { scope: 'col' }, c || h('span', { class: 'visually-hidden' }, 'Open'))))),
      tbody));
}

// fetchRuns reads one page of runs, filtered as the page asks.
export function fetchRuns(client, { location, kind, state, batch, cursor, limit = 50 }) {
  return client.get(`/v1/runs${qs({ location_id: location, kind, state, batch_id: batch, cursor, limit })}`);
}

// PagedTable shows a list read page by page, with loading, empty and
// error states and a Load more button.
export class PagedTable {
  constructor({ columns, caption, fetchPage, row, emptyText }) {
    this.columns = columns;
    this.fetchPage = fetchPage;
    this.row = row;
    this.emptyText = emptyText;
    this.caption = caption;
    this.rows = new Map();
    this.cursor = null;
    this.el = h('div', { class: 'paged' });
    this.tbody = h('tbody');
    this.more = h('button', { type: 'button', onclick: (ev) => busy(ev.currentTarget, () => this.loadMore()) }, 'Load more');
    this.pager = h('div', { class: 'pager' }, this.more);
    this.note = h('p', { class: 'muted', role: 'status' });
  }

  // load reads the first page. quiet keeps the rows shown until the new
  // ones are in, for a list read again because something changed.
  async load({ quiet = false } = {}) {
    const shown = quiet && this.rows.size > 0;
    if (!shown) fill(this.el, h('p', { class: 'loading', role: 'status' }, 'Loading…'));
    let page;
    try {
      page = await this.fetchPage(null);
    } catch (err) {
      if (!shown) fill(this.el, errorBox(err, () => this.load()));
      return false;
    }
    this.rows.clear();
    fill(this.tbody);
    if (!page.items.length) {
      fill(this.el, empty(this.emptyText));
      return true;
    }
    this.add(page);
    fill(this.el, tableOf(this.columns, this.tbody, this.caption), this.pager, this.note);
    return true;
  }

  add(page) {
    for (const item of page.items) {
      if (this.rows.has(item.id)) continue;
      const tr = this.row(item);
      this.rows.set(item.id, tr);
      this.tbody.append(tr);
    }
    this.cursor = page.next_cursor || null;
    this.pager.hidden = !this.cursor;
  }

  async loadMore() {
    const before = this.rows.size;
    try {
      this.add(await this.fetchPage(this.cursor));
      this.note.textContent = `${this.rows.size - before} more shown.`;
    } catch (err) {
      fill(this.note, errorBox(err));
    }
  }

  // replace swaps the row of an item already shown for a fresh one.
  replace(item) {
    const old = this.rows.get(item.id);
    if (!old) return false;
    const tr = this.row(item);
    old.replaceWith(tr);
    this.rows.set(item.id, tr);
    return true;
  }
}

const stateOptions = ['queued', 'running', 'awaiting_apply', 'succeeded', 'failed', 'cancelled'];
const kindOptions = ['users', 'panel', 'refresh', 'import'];

export async function render(ctx) {
  const view = ctx.query.get('view') === 'batches' ? 'batches' : 'runs';
  const feedStatus = h('span', { class: 'feed-status muted', role: 'status' });
  const tabs = h('nav', { class: 'tabs', 'aria-label': 'Sync runs views' },
    h('a', { href: '#/runs', 'aria-current': view === 'runs' ? 'page' : null }, 'Runs'),
    h('a', { href: '#/runs?view=batches', 'aria-current': view === 'batches' ? 'page' : null }, 'Batches'));
  const body = h('div');
  fill(ctx.main, pageHeader('Sync runs', feedStatus), tabs, body);
  if (view === 'batches') return renderBatches(ctx, body, feedStatus);
  return renderRuns(ctx, body, feedStatus);
}

function option(value, label, selected) {
  return h('option', { value, selected: value === selected }, label);
}

async function renderRuns(ctx, body, feedStatus) {
  const filters = {
    location: ctx.query.get('location') || '',
    kind: ctx.query.get('kind') || '',
    state: ctx.query.get('state') || '',
    batch: ctx.query.get('batch') || '',
  };
  const names = await locationNames(ctx.client);
  if (!ctx.current()) return;

  const go = (change) => {
    const next = { ...filters, ...change };
    ctx.navigate(`/runs${qs(next)}`);
  };
  const locSelect = h('select', { name: 'location', onchange: (ev) => go({ location: ev.target.value }) },
    option('', 'All locations', filters.location),
    [...names.values()].sort((a, b) => a.name.localeCompare(b.name)).map((l) => option(l.id, l.name, filters.location)));
  if (filters.location && !names.has(filters.location)) locSelect.append(option(filters.location, 'Unknown location', filters.location));
  const kindSelect = h('select', { name: 'kind', onchange: (ev) => go({ kind: ev.target.value }) },
    option('', 'All kinds', filters.kind), kindOptions.map((k) => option(k, kindLabel[k], filters.kind)));
  const stateSelect = h('select', { name: 'state', onchange: (ev) => go({ state: ev.target.value }) },
    option('', 'All states', filters.state), stateOptions.map((s) => option(s, runStateLabel[s], filters.state)));
  const any = filters.location || filters.kind || filters.state || filters.batch;
  const toolbar = h('form', { class: 'toolbar', role: 'search', 'aria-label': 'Filter runs', onsubmit: (ev) => ev.preventDefault() },
    field('Location', locSelect),
    field('Kind', kindSelect),
    field('State', stateSelect),
    any ? h('button', { type: 'button', class: 'link clear-filters', onclick: () => ctx.navigate('/runs') }, 'Clear filters') : null);
  const batchNote = filters.batch
    ? h('p', { class: 'alert alert-info' }, 'Showing the runs of one batch. ',
      h('a', { href: `#/batches/${encodeURIComponent(filters.batch)}` }, 'Open the batch'), ' · ',
      h('button', { type: 'button', class: 'link', onclick: () => go({ batch: '' }) }, 'Show every run'))
    : null;
  const fresh = h('div', { class: 'fresh', 'aria-live': 'polite' });

  const table = new PagedTable({
    columns: runColumns,
    caption: 'Sync runs, newest first',
    fetchPage: (cursor) => fetchRuns(ctx.client, { ...filters, cursor }),
    row: (run) => runRow(run, names),
    emptyText: any
      ? 'No run matches these filters. Clear the filters to see every run.'
      : 'No sync has run yet. Runs appear here when someone taps SYNC USERS, SYNC PANEL or REFRESH, when a panel checks in, and on each location\'s schedule.',
  });
  fill(body, toolbar, batchNote, fresh, table.el);
  await table.load();
  if (!ctx.current()) return;

  // Runs shown are read again when an event about them arrives; a new
  // run is offered rather than pushed in, so the rows do not move under
  // the reader's pointer.
  const reread = new Rereader(ctx, table, (id) => `/v1/runs/${encodeURIComponent(id)}`, 200);
  const offerNew = () => {
    if (fresh.childNodes.length) return;
    fill(fresh, h('p', { class: 'alert alert-info' }, 'New runs have started. ',
      h('button', { type: 'button', onclick: () => ctx.app.route() }, 'Show new runs')));
  };
  const feed = new EventFeed(ctx.client, {
    locationIds: filters.location ? [filters.location] : [],
    accountId: feedAccount(ctx.me),
    onEvent: (ev) => {
      if (!ev.run_id) return;
      if (table.rows.has(ev.run_id)) {
        reread.add(ev.run_id);
      } else if (ev.type === 'sync.requested' && (!filters.batch || ev.data?.batch_id === filters.batch)) {
        offerNew();
      }
    },
    onStatus: (s) => { feedStatus.textContent = feedStatusText[s] || ''; },
    onReset: () => offerNew(),
  }).start();
  ctx.onCleanup(() => {
    feed.stop();
    reread.stop();
  });
}

// Rereader reads rows of a table again when events say they changed;
// several events about one row in quick succession cost one read.
class Rereader {
  constructor(ctx, table, pathOf, delay) {
    this.ctx = ctx;
    this.table = table;
    this.pathOf = pathOf;
    this.delay = delay;
    this.pending = new Set();
    this.timer = null;
  }

  add(id) {
    this.pending.add(id);
    if (!this.timer) this.timer = setTimeout(() => this.flush(), this.delay);
  }

  flush() {
    this.timer = null;
    for (const id of this.pending) {
      this.ctx.client.get(this.pathOf(id)).then((row) => {
        if (this.ctx.current()) this.table.replace(row);
      }).catch(() => {});
    }
    this.pending.clear();
  }

  stop() {
    clearTimeout(this.timer);
  }
}

export const batchKindWords = {
  users: 'User sync', panel: 'Panel sync', refresh: 'Refresh', import: 'User import',
};

// batchTitle names a batch as a person asked for it.
export function batchTitle(b) {
  const what = batchKindWords[b.kind] || 'Sync';
  const of = b.kind === 'import' ? 'for' : 'of';
  if (b.scope === 'group' && b.group) return `${what} ${of} group ${b.group}`;
  if (b.scope === 'locations') return `${what} ${of} chosen locations`;
  if (b.scope === 'all') return `${what} ${of} All Locations`;
  return `${what} batch`;
}

export function batchDone(b) {
  return (b.succeeded || 0) + (b.failed || 0) + (b.cancelled || 0);
}

function batchRow(b) {
  const titleId = `batch-${b.id}-title`;
  const done = batchDone(b);
  return h('tr', { dataset: { batchId: b.id, state: b.state } },
    h('td', { 'data-label': 'Batch', id: titleId }, batchTitle(b)),
    h('td', { 'data-label': 'State' }, b.state === 'done' ? badge('Done', b.failed ? 'warn' : 'good') : badge('Running', 'info')),
    h('td', { 'data-label': 'Progress' }, h('div', {},
      h('progress', { max: String(b.total || 1), value: String(b.total ? done : 1), 'aria-label': `${done} of ${b.total} done` }),
      h('span', { class: 'small' }, `${done} of ${b.total} done`))),
    h('td', { 'data-label': 'Outcome' }, batchOutcome(b)),
    whenCell(b.created_at, b.requested_by, b.finished_at),
    h('td', { 'data-label': '' }, h('a', { href: `#/batches/${encodeURIComponent(b.id)}`, 'aria-describedby': titleId }, 'View…')));
}

export function batchOutcome(b) {
  const parts = [`${b.succeeded || 0} succeeded`];
  if (b.failed) parts.push(`${b.failed} failed`);
  if (b.cancelled) parts.push(`${b.cancelled} cancelled`);
  return parts.join(', ');
}

async function renderBatches(ctx, body, feedStatus) {
  const fresh = h('div', { class: 'fresh', 'aria-live': 'polite' });
  const table = new PagedTable({
    columns: ['Batch', 'State', 'Progress', 'Outcome', 'When', ''],
    caption: 'Batches, newest first',
    fetchPage: (cursor) => ctx.client.get(`/v1/batches${qs({ cursor, limit: 50 })}`),
    row: batchRow,
    emptyText: 'No batch yet. A batch starts when someone syncs All Locations, a group or several chosen locations at once, or uploads a user list.',
  });
  fill(body, fresh, table.el);
  await table.load();
  if (!ctx.current()) return;

  const reread = new Rereader(ctx, table, (id) => `/v1/batches/${encodeURIComponent(id)}`, 300);
  const feed = new EventFeed(ctx.client, {
    accountId: feedAccount(ctx.me),
    onEvent: (ev) => {
      const id = ev.data?.batch_id;
      if (!id) return;
      if (table.rows.has(id)) {
        reread.add(id);
      } else if (!fresh.childNodes.length) {
        fill(fresh, h('p', { class: 'alert alert-info' }, 'A new batch has started. ',
          h('button', { type: 'button', onclick: () => ctx.app.route() }, 'Show new batches')));
      }
    },
    onStatus: (s) => { feedStatus.textContent = feedStatusText[s] || ''; },
  }).start();
  ctx.onCleanup(() => {
    feed.stop();
    reread.stop();
  });
}
