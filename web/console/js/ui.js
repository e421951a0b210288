// Small building blocks shared by every page. Pages build the DOM with h()
// rather than innerHTML, so text from the server is always text, never
// markup.

// h makes an element. props: class, text, html is not offered; on<event>
// handlers; boolean attributes; anything else becomes an attribute.
// children: nodes, strings, numbers, arrays of them; null and false are
// skipped.
export function h(tag, props = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(props || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k === 'class') el.className = Array.isArray(v) ? v.filter(Boolean).join(' ') : v;
    else if (k === 'text') el.textContent = v;
    else if (k === 'dataset') Object.assign(el.dataset, v);
    else if (k.startsWith('on') && typeof v === 'function') el.addEventListener(k.slice(2), v);
    else if (k === 'value' && 'value' in el) el.value = v;
    else if (k === 'checked' || k === 'selected' || k === 'disabled' || k === 'hidden' || k === 'open') el[k] = Boolean(v);
    else el.setAttribute(k, v === true ? '' : String(v));
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const c of children) {
    if (c === null || c === undefined || c === false) continue;
    if (Array.isArray(c)) append(el, c);
    else el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
}

// clear empties an element and fills it with children.
export function fill(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

// Times are shown in the browser's time zone, which Intl picks up.
const dateTime = new Intl.DateTimeFormat(undefined, { dateStyle: 'medium', timeStyle: 'medium' });
const timeOnly = new Intl.DateTimeFormat(undefined, { timeStyle: 'medium' });
const relative = new Intl.RelativeTimeFormat(undefined, { numeric: 'auto' });

// fmtTime shows an RFC 3339 time; today's times show the time alone.
export function fmtTime(iso) {
  if (!iso) return '—';
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return '—';
  const now = new Date();
  return d.toDateString() === now.toDateString() ? timeOnly.format(d) : dateTime.format(d);
}

// timeEl is a <time> element: the local time as text, the full time as
// its title and machine-readable value.
export function timeEl(iso) {
  if (!iso) return h('span', { class: 'muted' }, '—');
  return h('time', { datetime: iso, title: dateTime.format(new Date(iso)) }, fmtTime(iso));
}

// ago says how long ago a time was, in words.
export function ago(iso) {
  if (!iso) return 'never';
  const secs = Math.round((new Date(iso).getTime() - Date.now()) / 1000);
  const abs = Math.abs(secs);
  if (abs < 45) return relative.format(Math.round(secs), 'second');
  if (abs < 2700) return relative.format(Math.round(secs / 60), 'minute');
  if (abs < 86400 * 1.5) return relative.format(Math.round(secs / 3600), 'hour');
  return relative.format(Math.round(secs / 86400), 'day');
}

// toast shows a short message that reads itself to screen readers.
export function toast(message, kind = 'info') {
  const box = document.getElementById('toasts');
  const item = h('div', { class: ['toast', `toast-${kind}`] }, message);
  box.append(item);
  setTimeout(() => item.remove(), kind === 'error' ? 9000 : 5000);
}

// dialog opens a modal <dialog> with content and buttons and resolves
// with the value of the button pressed (null when dismissed). The
// browser's modal dialog traps focus and closes on Escape.
export function dialog({ title, content, buttons, labelledBy }) {
  return new Promise((resolve) => {
    const heading = h('h2', { id: labelledBy || `dlg-${Math.random().toString(36).slice(2)}` }, title);
    const actions = h('div', { class: 'dialog-actions' });
    const dlg = h('dialog', { class: 'dialog', 'aria-labelledby': heading.id }, heading, h('div', { class: 'dialog-body' }, content), actions);
    let result = null;
    for (const b of buttons) {
      actions.append(h('button', {
        type: 'button',
        class: b.class || (b.primary ? 'primary' : ''),
        onclick: async () => {
          if (b.action) {
            const ok = await b.action();
            if (ok === false) return;
          }
          result = b.value;
          dlg.close();
        },
      }, b.label));
    }
    dlg.addEventListener('close', () => {
      dlg.remove();
      resolve(result);
    });
    document.body.append(dlg);
    dlg.showModal();
  });
}

// confirm asks a yes/no question; danger marks the confirming button red.
export async function confirm({ title, message, confirmLabel = 'Confirm', danger = false }) {
  const v = await dialog({
    title,
    content: typeof message === 'string' ? h('p', {}, message) : message,
    buttons: [
      { label: 'Cancel', value: false },
      { label: confirmLabel, value: true, class: danger ? 'danger' : 'primary' },
    ],
  });
  return v === true;
}

// Words for customers: what each problem code means and what to do.
const advice = {
  panel_disconnected: 'The panel at this location is not connected to the server right now, so nothing can be sent to it. Check that the panel has power and an internet connection, then try again. Anything requested by check-in will run when it reconnects.',
  panel_authorization_expired: 'The panel\'s authorization has expired, so the server no longer accepts its connection. An administrator can issue a new panel credential under the location\'s settings.',
  panel_armed: 'The panel is armed. A panel sync can only run while it is disarmed: disarm the system, then try again.',
  rate_limited: 'Too many requests in a short time. Wait a moment and try again.',
  forbidden: 'Your role does not allow this. Ask an owner or administrator of the account.',
  not_found: 'That no longer exists; it may have been removed by someone else.',
  invalid_state: 'That is not possible in the run\'s current state; the page has been refreshed with its latest state.',
  conflict: '',
  service_unavailable: 'The service is temporarily unavailable. Try again in a few seconds.',
  internal: 'Something went wrong on the server. Try again; if it keeps happening, contact support with the time it happened.',
  network: 'The server could not be reached. Check your connection and try again.',
  last_owner: 'The account must keep at least one active owner. Make someone else an owner first.',
};

// errorText turns an ApiError into a sentence for the person at the screen:
// the server's detail (it names what was wrong) and, where it helps, what
// to do about it.
export function errorText(err) {
  if (!err) return '';
  const detail = err.problem?.detail || err.message || '';
  const tip = advice[err.code];
  if (err.code === 'panel_disconnected' || err.code === 'panel_armed' || err.code === 'panel_authorization_expired') {
    return tip;
  }
  if (tip && detail && !tip.includes(detail)) return `${capitalize(detail)}. ${tip}`.replace('.. ', '. ');
  return tip || capitalize(detail) || 'Something went wrong.';
}

function capitalize(s) {
  return s ? s.charAt(0).toUpperCase() + s.slice(1) : s;
}

// fieldErrors shows a problem's per-field errors next to the form's inputs
// (matched by name) and answers whether any was placed.
export function fieldErrors(form, err) {
  form.querySelectorAll('.field-error').forEach((e) => e.remove());
  form.querySelectorAll('[aria-invalid]').forEach((e) => e.removeAttribute('aria-invalid'));
  const list = err?.problem?.errors || (err?.problem?.field ? [{ field: err.problem.field, message: err.problem.detail }] : []);
  let placed = false;
  for (const fe of list) {
    const input = form.querySelector(`[name="${CSS.escape(fe.field || '')}"]`);
    if (!input) continue;
    const id = `${input.id || input.name}-error`;
    input.setAttribute('aria-invalid', 'true');
    input.setAttribute('aria-describedby', id);
    input.after(h('p', { class: 'field-error', id }, capitalize(fe.message)));
    placed = true;
  }
  return placed;
}

// busy disables a button while work runs, so a double click sends once.
export async function busy(button, work) {
  const was = button.disabled;
  button.disabled = true;
  button.setAttribute('aria-busy', 'true');
  try {
    return await work();
  } finally {
    button.disabled = was;
    button.removeAttribute('aria-busy');
  }
}

// field is a labelled form control.
export function field(label, control, hint) {
  const id = control.id || `f-${control.name || Math.random().toString(36).slice(2)}`;
  control.id = id;
  const hintEl = hint ? h('p', { class: 'hint', id: `${id}-hint` }, hint) : null;
  if (hintEl) control.setAttribute('aria-describedby', hintEl.id);
  if (control.type === 'checkbox') {
    return h('div', { class: 'field field-check' }, control, h('label', { for: id }, label), hintEl);
  }
  return h('div', { class: 'field' }, h('label', { for: id }, label), control, hintEl);
}

// Labels for the API's states and values, as a customer reads them.
export const syncStatusLabel = {
  ok: 'OK',
  syncing: 'Syncing',
  sync_failure: 'Sync Failure',
  held: 'Held for apply',
  never: 'Never synced',
};

export const connectionLabel = {
  connected: 'Connected',
  disconnected: 'Disconnected',
  authorization_expired: 'Authorization expired',
};

export const armedLabel = {
  disarmed: 'Disarmed',
  armed_away: 'Armed away',
  armed_stay: 'Armed stay',
  armed_night: 'Armed night',
  alarm: 'Alarm',
  unknown: 'Unknown',
  '': 'Unknown',
};

export const runStateLabel = {
  queued: 'Queued',
  running: 'Running',
  awaiting_apply: 'Awaiting apply',
  succeeded: 'Succeeded',
  failed: 'Failed',
  cancelled: 'Cancelled',
};

export const kindLabel = {
  users: 'User sync',
  panel: 'Panel sync',
  refresh: 'Refresh',
  import: 'User import',
};

// badge is a small coloured label; the colour repeats the word, never
// replaces it.
export function badge(text, tone = 'neutral') {
  return h('span', { class: ['badge', `badge-${tone}`] }, text);
}

export function statusTone(status) {
  return { ok: 'good', syncing: 'info', sync_failure: 'bad', held: 'warn', never: 'neutral' }[status] || 'neutral';
}

export function runTone(state) {
  return { succeeded: 'good', failed: 'bad', awaiting_apply: 'warn', running: 'info', queued: 'info', cancelled: 'neutral' }[state] || 'neutral';
}

// pageHeader is a page's title row with optional actions at the right.
export function pageHeader(title, ...actions) {
  return h('div', { class: 'page-header' }, h('h1', { tabindex: '-1' }, title), h('div', { class: 'page-actions' }, actions));
}

// empty is the line shown where a list has nothing.
export function empty(text) {
  return h('p', { class: 'empty' }, text);
}

// errorBox is an alert shown in place of content that failed to load.
export function errorBox(err, retry) {
  return h('div', { class: 'alert alert-bad', role: 'alert' },
    h('p', {}, errorText(err)),
    retry ? h('button', { type: 'button', onclick: retry }, 'Try again') : null);
}
