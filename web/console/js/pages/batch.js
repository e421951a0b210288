// One batch: the runs of an All-Locations request (or an upload), its
// progress while they run, a summary when they are done, and Cancel batch.
// The Event Log feed keeps it current; a slow poll covers a feed that is
// not live.

import { EventFeed } from '../realtime.js';
import {
  h, fill, busy, dialog, errorText, timeEl, badge, pageHeader, errorBox,
} from '../ui.js';
import { canOperate } from './locations.js';
import {
  fetchRuns, runRow, runColumns, locationNames, batchTitle, batchDone, feedAccount, feedStatusText,
  PagedTable, sentence,
} from './runs.js';

// While a batch runs and the feed is not live, it is read this often.
const pollEvery = 5000;

export async function render(ctx) {
  const id = ctx.params.id;
  const feedStatus = h('span', { class: 'feed-status muted', role: 'status' });
  const outcome = h('div', { class: 'outcome', role: 'status', 'aria-live': 'polite', tabindex: '-1' });
  const head = h('div', {}, h('p', { class: 'loading', role: 'status' }, 'Loading…'));
  const runsHere = h('div');
  fill(ctx.main,
    pageHeader('Batch', feedStatus, h('a', { class: 'button', href: '#/events' }, 'GO TO EVENTS')),
    outcome, head, runsHere);

  const path = `/v1/batches/${encodeURIComponent(id)}`;
  let batch;
  let live = false;
  // The batch does not say that it was cancelled while its started runs
  // finish, so the page remembers the cancel it sent.
  let cancelSent = false;

  let names = new Map();
  const namesRead = locationNames(ctx.client).then((known) => { names = known; });
  const table = new PagedTable({
    columns: runColumns,
    caption: 'The runs of this batch',
    fetchPage: async (cursor) => {
      await namesRead;
      return fetchRuns(ctx.client, { batch: id, cursor, limit: 100 });
    },
    row: (run) => runRow(run, names),
    emptyText: 'No run has been created for this batch yet. They appear here as they are created.',
  });

  const say = (tone, text) => fill(outcome, h('div', { class: ['alert', `alert-${tone}`] }, h('p', {}, text)));

  const cancel = async (button) => {
    const ok = await dialog({
      title: 'Cancel this batch?',
      content: [
        h('p', {}, 'Runs that have not started yet are cancelled, and no more are created.'),
        h('p', {}, 'Runs already under way carry on and end as usual; the batch is done once they have. Runs held for apply stay held until someone applies or cancels them.'),
      ],
      buttons: [
        { label: 'Keep the batch running', value: false },
        { label: 'Cancel batch', value: true, class: 'danger' },
      ],
    });
    if (ok !== true) return;
    try {
      batch = await busy(button, () => ctx.client.post(`${path}/cancel`));
      cancelSent = true;
      say('good', 'The batch was cancelled. Runs already under way finish on their own.');
    } catch (err) {
      if (err.code === 'conflict') {
        cancelSent = true;
        say('warn', `${sentence(errorText(err))} The page shows its latest state.`);
      } else {
        say('bad', errorText(err));
      }
    }
    if (!ctx.current()) return;
    await refresh(true);
    outcome.focus();
  };

  const drawHead = () => {
    const b = batch;
    const done = batchDone(b);
    const h1 = ctx.main.querySelector('h1');
    if (h1) h1.textContent = batchTitle(b);
    document.title = `${batchTitle(b)} · panelsync`;
    const held = [...table.rows.values()].filter((tr) => tr.dataset.state === 'awaiting_apply').length;
    fill(head,
      h('section', { class: 'card', 'aria-labelledby': 'batch-progress' },
        h('h2', { id: 'batch-progress' }, 'Progress ', b.state === 'done' ? badge('Done', b.failed ? 'warn' : 'good') : badge('Running', 'info')),
        h('progress', { max: String(b.total || 1), value: String(b.total ? done : 1), 'aria-labelledby': 'batch-progress', 'aria-describedby': 'batch-count' }),
        h('p', { id: 'batch-count' }, `${done} of ${b.total} ${b.total === 1 ? 'location' : 'locations'} done`),
        h('dl', { class: 'stats' },
          stat('Queued', b.queued),
          stat('Running or held', b.running),
          stat('Succeeded', b.succeeded),
          stat('Failed', b.failed),
          stat('Cancelled', b.cancelled),
          b.skipped ? stat('Skipped', b.skipped) : null),
        h('p', { class: 'muted small' }, 'Requested ', timeEl(b.created_at), b.requested_by ? ` by ${b.requested_by}` : '',
          b.finished_at ? [' · finished ', timeEl(b.finished_at)] : null),
        held ? h('div', { class: 'alert alert-warn' }, h('p', {}, `${held} ${held === 1 ? 'run is' : 'runs are'} held for apply. The batch finishes when someone applies or cancels ${held === 1 ? 'it' : 'each of them'}: open ${held === 1 ? 'it' : 'them'} from the list below.`)) : null,
        b.state === 'done' ? summary(b) : null,
        b.state === 'running' && !cancelSent && canOperate(ctx.me)
          ? h('div', { class: 'form-actions' }, h('button', { type: 'button', class: 'danger-outline', onclick: (ev) => cancel(ev.currentTarget) }, 'Cancel batch'))
          : null));
  };

  const refresh = async (withRuns) => {
    let fresh;
    try {
      fresh = await ctx.client.get(path);
    } catch (err) {
      if (!ctx.current()) return false;
      if (!batch) {
        fill(head, err.status === 404
          ? h('div', { class: 'alert alert-bad', role: 'alert' }, h('p', {}, 'This batch does not exist in this account. The link may be incomplete.'), h('p', {}, h('a', { href: '#/runs?view=batches' }, 'Go to the batches')))
          : errorBox(err, () => ctx.app.route()));
      }
      return false;
    }
    if (!ctx.current()) return false;
    batch = fresh;
    if (withRuns) await table.load({ quiet: true });
    if (!ctx.current()) return false;
    drawHead();
    return true;
  };

  if (!await refresh(false)) return;
  fill(runsHere, h('h2', {}, 'Runs'), table.el);
  await table.load();
  if (!ctx.current()) return;
  drawHead();

  // Events about the batch or its runs are gathered for a moment and
  // then read at once; a run not listed yet means the list is read again.
  const pendingRuns = new Set();
  let reloadList = false;
  let timer = null;
  const flush = async () => {
    timer = null;
    const ids = [...pendingRuns];
    pendingRuns.clear();
    const whole = reloadList || ids.length > 20;
    reloadList = false;
    if (whole) {
      await refresh(true);
      return;
    }
    await Promise.all(ids.map((runId) => ctx.client.get(`/v1/runs/${encodeURIComponent(runId)}`)
      .then((run) => { if (ctx.current()) table.replace(run); })
      .catch(() => {})));
    await refresh(false);
  };
  const schedule = () => {
    if (!timer) timer = setTimeout(flush, 300);
  };
  const feed = new EventFeed(ctx.client, {
    accountId: feedAccount(ctx.me),
    onEvent: (ev) => {
      if (ev.data?.batch_id !== id) return;
      if (ev.run_id) {
        if (table.rows.has(ev.run_id)) pendingRuns.add(ev.run_id);
        else reloadList = true;
      }
      schedule();
    },
    onStatus: (s) => {
      live = s === 'live';
      feedStatus.textContent = feedStatusText[s] || '';
    },
    onReset: () => {
      reloadList = true;
      schedule();
    },
  }).start();
  const poller = setInterval(() => {
    if (!live && batch?.state === 'running') refresh(true);
  }, pollEvery);
  ctx.onCleanup(() => {
    feed.stop();
    clearTimeout(timer);
    clearInterval(poller);
  });
}

function stat(label, value) {
  return h('div', {}, h('dt', {}, label), h('dd', {}, String(value ?? 0)));
}

// summary says in words how a finished batch went.
function summary(b) {
  const parts = [`${b.succeeded} succeeded`];
  if (b.failed) parts.push(`${b.failed} failed`);
  if (b.cancelled) parts.push(`${b.cancelled} cancelled`);
  const lines = [h('p', {}, `Finished: ${parts.join(', ')} of ${b.total}.`)];
  if (b.skipped) lines.push(h('p', {}, `${b.skipped} ${b.skipped === 1 ? 'location was' : 'locations were'} left out because ${b.skipped === 1 ? 'it was' : 'they were'} already syncing.`));
  if (b.failed) lines.push(h('p', {}, 'The failed runs are marked in the list below; open one to see why it failed and what to do. A location with a failed run shows Sync Failure until a later sync succeeds.'));
  return h('div', { class: ['alert', b.failed ? 'alert-warn' : 'alert-good'] }, lines);
}

