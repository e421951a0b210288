// One sync run: what it is, what it changed (or would change, while held),
// its data and control file to download, and the actions its state allows
// the person's role: Apply, Re-apply, Cancel and Unsafe mark cancelled.
// The page follows the run's location in the Event Log, so a person
// watching sees it move from queued to its outcome.

import { EventFeed } from '../realtime.js';
import {
  h, fill, busy, dialog, confirm, errorText, timeEl, badge, pageHeader, empty, errorBox,
  kindLabel, runStateLabel,
} from '../ui.js';
import { canOperate, canAdminister } from './locations.js';
import {
  triggerLabel, finalStates, canAudit, feedAccount, feedStatusText, runStateBadge, runErrorText,
  changesText, tableOf, sentence,
} from './runs.js';

const actionLabel = {
  added: 'Added',
  updated: 'Updated',
  removed: 'Removed',
  failed: 'Not taken by the panel',
  code_missing: 'Needs a new code',
};

const actionTone = {
  added: 'good', updated: 'info', removed: 'warn', failed: 'bad', code_missing: 'warn',
};

const fieldLabel = {
  name: 'Name',
  email: 'E-mail',
  external_id: 'External id',
  authority: 'Authority',
  partitions: 'Partitions',
  access_schedule: 'Access schedule',
  has_code: 'Has a code',
  type: 'Type',
  partition: 'Partition',
};

const recordKindLabel = { partition: 'Partition', zone: 'Zone', device: 'Device' };

// How many change rows are drawn before "Show all" is needed.
const changesShown = 200;

export async function render(ctx) {
  const id = ctx.params.id;
  const feedStatus = h('span', { class: 'feed-status muted', role: 'status' });
  const outcome = h('div', { class: 'outcome', role: 'status', 'aria-live': 'polite', tabindex: '-1' });
  const body = h('div', {}, h('p', { class: 'loading', role: 'status' }, 'Loading…'));
  fill(ctx.main, pageHeader('Sync run', feedStatus), outcome, body);

  const page = new RunPage(ctx, id, body, outcome);
  const ok = await page.load();
  if (!ok || !ctx.current()) return;

  // The run's own events tell when to read it again; several close
  // together cost one read.
  let timer = null;
  const feed = new EventFeed(ctx.client, {
    locationIds: [page.run.location_id],
    accountId: feedAccount(ctx.me),
    onEvent: (ev) => {
      if (ev.run_id !== id) return;
      clearTimeout(timer);
      timer = setTimeout(() => page.load(), 150);
    },
    onStatus: (s) => { feedStatus.textContent = feedStatusText[s] || ''; },
    onReset: () => page.load(),
  }).start();
  ctx.onCleanup(() => {
    feed.stop();
    clearTimeout(timer);
  });
}

class RunPage {
  constructor(ctx, id, body, outcome) {
    this.ctx = ctx;
    this.id = id;
    this.body = body;
    this.outcome = outcome;
    this.run = null;
    this.location = null;
    this.showAll = false;
    this.loading = null;
  }

  path(suffix = '') {
    return `/v1/runs/${encodeURIComponent(this.id)}${suffix}`;
  }

  // load reads the run, its location and its changes and draws them;
  // overlapping calls share one read.
  load() {
    if (!this.loading) {
      this.loading = this.read().finally(() => { this.loading = null; });
    }
    return this.loading;
  }

  async read() {
    let run;
    try {
      run = await this.ctx.client.get(this.path());
    } catch (err) {
      if (!this.ctx.current()) return false;
      if (err.status === 404) {
        fill(this.body, h('div', { class: 'alert alert-bad', role: 'alert' },
          h('p', {}, 'This run does not exist in this account. It may belong to another account, or the link may be incomplete.'),
          h('p', {}, h('a', { href: '#/runs' }, 'Go to Sync runs'))));
      } else {
        fill(this.body, errorBox(err, () => this.load()));
      }
      return false;
    }
    // The location gives the run its name and the reason it is held; a
    // failure to read it leaves what was shown before.
    const [location, changes] = await Promise.all([
      this.ctx.client.get(`/v1/locations/${encodeURIComponent(run.location_id)}`)
        .catch(() => (this.location?.id === run.location_id ? this.location : null)),
      this.ctx.client.get(this.path('/changes')).catch((err) => ({ error: err })),
    ]);
    if (!this.ctx.current()) return false;
    this.run = run;
    this.location = location;
    this.draw(changes);
    return true;
  }

  locationName() {
    return this.location?.name || 'its location';
  }

  draw(changes) {
    const run = this.run;
    const ctx = this.ctx;
    const h1 = ctx.main.querySelector('h1');
    const title = `${kindLabel[run.kind] || 'Sync'} at ${this.location?.name || 'a location'}`;
    if (h1) h1.textContent = title;
    document.title = `${title} · panelsync`;

    // A message that waited for the outcome gives way to it.
    if (this.untilFinal && finalStates.has(run.state)) {
      const words = {
        succeeded: ['good', 'The panel confirmed the changes: they are applied.'],
        failed: ['bad', 'Applying the changes ended with a problem; what happened is shown below.'],
        cancelled: ['warn', 'The run was cancelled before the changes were all applied.'],
      }[run.state];
      this.say(...words);
    }
    fill(this.body,
      this.summary(),
      this.actions(),
      this.facts(),
      this.downloads(),
      this.changesSection(changes));
  }

  summary() {
    const run = this.run;
    const parts = [h('p', { class: 'run-state' }, runStateBadge(run), ' ', stateSentence(run))];
    if (run.state === 'awaiting_apply') {
      parts.push(h('div', { class: 'alert alert-warn' },
        h('p', {}, this.heldReason()),
        h('p', {}, 'Nothing has changed yet. Review the changes below, then Apply them or Cancel the run.')));
    }
    if (run.error) {
      const cls = run.state === 'failed' ? 'alert alert-bad' : 'alert alert-warn';
      parts.push(h('div', { class: cls },
        h('p', {}, runErrorText(run)),
        run.error.code === 'users_refused'
          ? h('p', {}, 'The panel took the other users. Those it did not take are listed under "Needs attention" below.')
          : null));
    }
    return h('div', { class: 'run-summary' }, parts);
  }

  heldReason() {
    const s = this.location?.settings;
    if (s && s.auto_apply === false) {
      return `This run is held for apply: automatic apply is off at ${this.locationName()}, so every change waits for a person.`;
    }
    if (s) {
      const count = s.safety_threshold_count ? ` or more than ${s.safety_threshold_count} users in all` : '';
      return `This run is held for apply because it would update or remove more than ${s.safety_threshold_percent}% of the users on record${count}: the safety threshold set for ${this.locationName()}.`;
    }
    return 'This run is held for apply: it changes more than the location\'s safety threshold allows, or automatic apply is off there.';
  }

  actions() {
    const run = this.run;
    const me = this.ctx.me;
    const admin = canAdminister(me);
    const active = !finalStates.has(run.state);
    const buttons = [];
    if (admin && run.state === 'awaiting_apply') {
      buttons.push(h('button', { type: 'button', class: 'primary', onclick: (ev) => this.apply(ev.currentTarget) }, 'Apply'));
    }
    if (admin && (run.state === 'succeeded' || run.state === 'failed') && (run.kind === 'import' || (run.kind === 'users' && run.mode === 'full'))) {
      buttons.push(h('button', { type: 'button', onclick: (ev) => this.reapply(ev.currentTarget) }, 'Re-apply'));
    }
    if (canOperate(me) && active) {
      buttons.push(h('button', { type: 'button', onclick: (ev) => this.cancel(ev.currentTarget) }, 'Cancel'));
    }
    if (admin && active) {
      buttons.push(h('button', { type: 'button', class: 'danger-outline', onclick: (ev) => this.markCancelled(ev.currentTarget) }, 'Unsafe mark cancelled'));
    }
    const links = [];
    if (canAudit(me)) links.push(h('a', { class: 'button', href: `#/audit?target_type=run&target_id=${encodeURIComponent(run.id)}` }, 'History'));
    links.push(h('a', { class: 'button', href: `#/events?location=${encodeURIComponent(run.location_id)}` }, 'Events'));
    return h('div', { class: 'run-actions' },
      buttons.length ? h('div', { class: 'page-actions', role: 'group', 'aria-label': 'Run actions' }, buttons) : null,
      h('div', { class: 'page-actions' }, links));
  }

  facts() {
    const run = this.run;
    const loc = this.location;
    const c = run.changes || {};
    return h('section', { class: 'card', 'aria-labelledby': 'run-facts' },
      h('h2', { id: 'run-facts' }, 'About this run'),
      h('dl', { class: 'facts-list' },
        h('dt', {}, 'Location'),
        h('dd', {}, loc
          ? [loc.name, loc.group ? h('span', { class: 'muted' }, ` (${loc.group})`) : null, ' · ',
            h('a', { href: `#/runs?location=${encodeURIComponent(loc.id)}` }, 'Its runs'), ' · ',
            h('a', { href: `#/locations/${encodeURIComponent(loc.id)}/settings` }, 'Settings')]
          : h('span', { class: 'muted' }, 'Unknown location')),
        h('dt', {}, 'Kind'), h('dd', {}, kindLabel[run.kind] || run.kind,
          run.kind === 'users' ? (run.mode === 'full' ? ', every user re-checked' : ', changes since the last sync') : ''),
        h('dt', {}, 'Started by'), h('dd', {}, triggerLabel[run.trigger] || run.trigger, run.requested_by ? ` · ${run.requested_by}` : ''),
        h('dt', {}, 'State'), h('dd', {}, runStateLabel[run.state] || run.state),
        h('dt', {}, 'Changes'), h('dd', {}, changesText(run), c.unchanged ? h('span', { class: 'muted' }, ` · ${c.unchanged} unchanged`) : null),
        h('dt', {}, 'Attempts'), h('dd', {}, String(run.attempt ?? 0)),
        h('dt', {}, 'Requested'), h('dd', {}, timeEl(run.created_at)),
        h('dt', {}, 'Started'), h('dd', {}, timeEl(run.started_at)),
        h('dt', {}, 'Finished'), h('dd', {}, timeEl(run.finished_at)),
        run.batch_id ? [h('dt', {}, 'Batch'), h('dd', {}, h('a', { href: `#/batches/${encodeURIComponent(run.batch_id)}` }, 'Open the batch this run belongs to'))] : null,
        run.reapplied_from ? [h('dt', {}, 'Re-applies'), h('dd', {}, h('a', { href: `#/runs/${encodeURIComponent(run.reapplied_from)}` }, 'The run whose user list it brings back'))] : null,
        run.import_id ? [h('dt', {}, 'Upload'), h('dd', { class: 'mono' }, run.import_id)] : null));
  }

  downloads() {
    const run = this.run;
    const noDataYet = (run.state === 'queued' || run.state === 'running') && run.kind !== 'import';
    const base = `run-${run.id}-${run.kind}`;
    const get = (suffix, filename) => (ev) => busy(ev.currentTarget, async () => {
      try {
        await this.ctx.client.download(this.path(suffix), filename);
      } catch (err) {
        this.say('bad', err.status === 404 ? noDataText(run, suffix) : errorText(err));
      }
    });
    return h('section', { class: 'card', 'aria-labelledby': 'run-downloads' },
      h('h2', { id: 'run-downloads' }, 'Downloads'),
      noDataYet
        ? h('p', { class: 'muted' }, 'The data is ready to download once the panel has answered.')
        : [
          h('p', { class: 'hint' }, downloadHint(run)),
          h('div', { class: 'page-actions' },
            h('button', { type: 'button', onclick: get('/data?format=csv', `${base}.csv`) }, 'Download data (CSV)'),
            h('button', { type: 'button', onclick: get('/data?format=json', `${base}.json`) }, 'Download data (JSON)'),
            run.import_id
              ? h('button', { type: 'button', onclick: get('/control', `import-${run.import_id}-control.json`) }, 'Download control file')
              : null),
        ]);
  }

  changesSection(changes) {
    const run = this.run;
    const heading = run.state === 'awaiting_apply' ? 'Changes Apply would make' : 'Changes';
    const section = h('section', { 'aria-labelledby': 'run-changes' }, h('h2', { id: 'run-changes' }, heading));
    if (changes?.error) {
      section.append(errorBox(changes.error, () => this.load()));
      return section;
    }
    const list = changes?.changes || [];
    if (run.kind === 'refresh') {
      section.append(empty('A refresh reads the panel\'s live status and changes no records.'));
      return section;
    }
    if (!list.length) {
      section.append(empty(finalStates.has(run.state) || run.state === 'awaiting_apply'
        ? (run.kind === 'import' ? 'This run changed nothing: the panel already held this user list.' : 'This run changed nothing: the record already matched the panel.')
        : 'Nothing compared yet. The changes appear here when the run has read the panel.'));
      return section;
    }
    const problems = list.filter((c) => c.action === 'failed' || c.action === 'code_missing');
    const regular = list.filter((c) => c.action !== 'failed' && c.action !== 'code_missing');
    const panelRun = run.kind === 'panel';
    if (problems.length) {
      const failed = problems.filter((c) => c.action === 'failed').length;
      const missing = problems.length - failed;
      section.append(h('div', { class: 'alert alert-bad', id: 'needs-attention' },
        h('h3', {}, 'Needs attention'),
        failed ? h('p', {}, `${failed} ${failed === 1 ? 'user was' : 'users were'} not taken by the panel; the other changes were applied. Check each reason, correct the list or the panel, and upload again or Re-apply.`) : null,
        missing ? h('p', {}, `${missing} ${missing === 1 ? 'user was' : 'users were'} left without a code; each one's row below says why. Give each of them a new code.`) : null),
      changesTable(problems, panelRun, 'Users that need attention'));
    }
    if (regular.length) {
      if (problems.length) section.append(h('h3', {}, 'All changes'));
      const shown = this.showAll ? regular : regular.slice(0, changesShown);
      section.append(changesTable(shown, panelRun, heading));
      if (shown.length < regular.length) {
        section.append(h('div', { class: 'pager' }, h('button', {
          type: 'button',
          onclick: () => { this.showAll = true; this.load(); },
        }, `Show all ${regular.length} changes`)));
      }
    }
    return section;
  }

  // say puts an outcome in the page's status region.
  say(tone, ...content) {
    this.untilFinal = false;
    fill(this.outcome, h('div', { class: ['alert', `alert-${tone}`] }, content.map((c) => (typeof c === 'string' ? h('p', {}, c) : c))));
  }

  // act sends one action and reports it; a run whose state moved on
  // meanwhile is read again and the page says so.
  async act(button, suffix, body, done) {
    try {
      const res = await busy(button, () => this.ctx.client.post(this.path(suffix), body));
      if (!this.ctx.current()) return;
      done(res);
    } catch (err) {
      if (!this.ctx.current()) return;
      if (err.code === 'invalid_state') {
        this.say('warn', `${errorText(err)}`);
      } else {
        this.say('bad', errorText(err));
      }
    }
    await this.load();
    // The button pressed may be gone from the redrawn page; the outcome
    // takes the focus so the keyboard stays where the news is.
    if (this.ctx.current() && this.outcome.childNodes.length) this.outcome.focus();
  }

  async apply(button) {
    const run = this.run;
    const c = run.changes || {};
    const counts = countsWords(c) || 'the held changes';
    const ok = await confirm({
      title: 'Apply the held changes?',
      message: run.kind === 'import'
        ? `This writes ${counts} to the panel at ${this.locationName()}, reads the panel back to check it, and updates the record to match.`
        : `This makes the record of ${this.locationName()} match what the panel sent: ${counts}.`,
      confirmLabel: 'Apply',
    });
    if (!ok) return;
    await this.act(button, '/apply', undefined, (r) => {
      if (r.state === 'queued' || r.state === 'running') {
        this.say('good', 'Approved: the changes are on their way to the panel. This page shows the outcome when the panel has confirmed them.');
        this.untilFinal = true;
      } else if (r.state === 'succeeded') {
        this.say('good', 'The held changes were applied.');
      } else {
        this.say('bad', `The changes could not be applied. ${runErrorText(r)}`);
      }
    });
  }

  async reapply(button) {
    const run = this.run;
    const codes = run.kind === 'users'
      ? ' Users it puts back whose code the panel no longer holds come back without a code; the new run lists them so you can give them new codes.'
      : ' User codes from the upload are sent again.';
    const ok = await confirm({
      title: 'Re-apply this run?',
      message: `This starts a new run that brings the panel at ${this.locationName()}, and its record, back to the user list of this run: users added since are removed and users removed since are put back. It is applied at once, whatever the safety threshold.${codes}`,
      confirmLabel: 'Re-apply',
    });
    if (!ok) return;
    await this.act(button, '/reapply', undefined, (res) => {
      const newRun = res.run;
      this.say('good', h('p', {}, `${res.message || 'Re-apply process has been initiated'}. `,
        newRun ? h('a', { href: `#/runs/${encodeURIComponent(newRun.id)}` }, 'Follow the re-apply run') : null));
    });
  }

  async cancel(button) {
    const run = this.run;
    const what = {
      queued: 'The run will not start.',
      running: 'The run is stopped; whatever it has not applied yet will not be.',
      awaiting_apply: 'The held changes are dropped and nothing is applied.',
    }[run.state] || 'Nothing more of this run will be applied.';
    const ok = await dialog({
      title: 'Cancel this run?',
      content: h('p', {}, what),
      buttons: [
        { label: 'Keep the run', value: false },
        { label: 'Cancel run', value: true, class: 'danger' },
      ],
    });
    if (ok !== true) return;
    await this.act(button, '/cancel', undefined, () => {
      this.say('good', 'The run was cancelled. Nothing more of it will be applied.');
    });
  }

  async markCancelled(button) {
    const check = h('input', { type: 'checkbox', id: 'unsafe-understood' });
    const problem = h('p', { class: 'field-error', role: 'alert', hidden: true }, 'Tick the box to confirm that you understand the risk.');
    const ok = await dialog({
      title: 'Unsafe mark cancelled',
      content: [
        h('p', {}, 'This marks the run cancelled at once, without waiting for whatever is executing it to stop safely. Use it only for a run that is stuck and cannot be cancelled the normal way.'),
        h('p', {}, h('strong', {}, 'The risk: '), `if the run was already writing to the panel at ${this.locationName()}, the panel may keep part of the changes while the record does not. The panel and the record can then disagree until the next full user sync.`),
        h('div', { class: 'field field-check' }, check, h('label', { for: check.id }, 'I understand the panel may be left half changed')),
        problem,
      ],
      buttons: [
        { label: 'Keep the run', value: false },
        {
          label: 'Mark cancelled',
          value: true,
          class: 'danger',
          action: () => {
            problem.hidden = check.checked;
            if (!check.checked) check.focus();
            return check.checked;
          },
        },
      ],
    });
    if (ok !== true) return;
    await this.act(button, '/mark-cancelled', { confirm: true }, () => {
      this.say('warn', 'The run is marked cancelled. If it was writing to the panel, run SYNC USERS at this location to check the panel against the record.');
    });
  }
}

function countsWords(c) {
  const parts = [];
  if (c.added) parts.push(`${c.added} added`);
  if (c.updated) parts.push(`${c.updated} updated`);
  if (c.removed) parts.push(`${c.removed} removed`);
  if (!parts.length) return '';
  return `${parts.join(', ')} ${c.added + c.updated + c.removed === 1 ? 'user' : 'users'}`;
}

function stateSentence(run) {
  switch (run.state) {
    case 'queued': return run.error ? 'The last attempt failed; it will be tried again shortly.' : 'Waiting for a worker to start it.';
    case 'running': return 'Under way.';
    case 'awaiting_apply': return 'Waiting for someone to apply it.';
    case 'succeeded': return 'Finished.';
    case 'failed': return 'Ended with a problem.';
    case 'cancelled': return 'Cancelled; nothing more of it is applied.';
    default: return '';
  }
}

function downloadHint(run) {
  if (run.import_id) return 'The data in the format it was uploaded in is the file as received, with user codes masked as ****. The other format lists the users this run writes to its location.';
  if (run.kind === 'import') return 'The user list this run writes to the panel. User codes are never included.';
  return 'What the panel sent for this run. User codes are never included.';
}

function noDataText(run, suffix) {
  if (suffix === '/control') return 'This upload was sent without a control file.';
  if (run.state === 'failed') return 'This run has no data to download: it ended before the panel answered.';
  return 'This run has no data to download yet.';
}

function valueText(v) {
  if (v === undefined || v === null || v === '') return '(empty)';
  if (Array.isArray(v)) return v.length ? v.join(', ') : '(none)';
  if (typeof v === 'boolean') return v ? 'yes' : 'no';
  return String(v);
}

function changeDetail(c) {
  if (c.action === 'failed') {
    return h('div', {},
      h('span', { class: 'line' }, c.message ? sentence(c.message) : 'The panel did not take this user.'),
      c.code ? h('span', { class: 'line muted small' }, `Panel's reason: ${c.code}`) : null);
  }
  if (c.action === 'code_missing') return sentence(c.message || 'Put back without a code: give this user a new code.');
  if (c.action !== 'updated' || !c.fields?.length) return h('span', { class: 'muted' }, '—');
  return h('ul', { class: 'field-changes' }, c.fields.map((f) => {
    if (f.field === 'code') return h('li', {}, 'Code changed');
    return h('li', {}, `${fieldLabel[f.field] || f.field}: `, h('span', { class: 'from' }, valueText(f.from)), ' → ', h('span', { class: 'to' }, valueText(f.to)));
  }));
}

function changesTable(list, panelRun, caption) {
  const tbody = h('tbody', {}, list.map((c) => h('tr', { class: c.action === 'failed' ? 'row-bad' : c.action === 'code_missing' ? 'row-warn' : '', dataset: { action: c.action } },
    h('td', { 'data-label': 'Change' }, badge(actionLabel[c.action] || c.action, actionTone[c.action] || 'neutral')),
    h('td', { 'data-label': panelRun ? 'Record' : 'User number' }, panelRun ? `${recordKindLabel[c.kind] || c.kind || ''} ${c.number}` : String(c.number)),
    h('td', { 'data-label': 'Name' }, c.name || h('span', { class: 'muted' }, '—')),
    h('td', { 'data-label': 'Details' }, changeDetail(c)))));
  return tableOf(['Change', panelRun ? 'Record' : 'User number', 'Name', 'Details'], tbody, caption);
}
