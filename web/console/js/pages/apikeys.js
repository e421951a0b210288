// API keys: the account's keys for scripts and integrations, Create API
// key… (its secret shown once), and Revoke.

import {
  h, fill, field, busy, dialog, confirm, errorText, fieldErrors, timeEl, badge, pageHeader, empty, errorBox, toast,
} from '../ui.js';
import { canAdminister } from './locations.js';
import { tableOf } from './runs.js';

const scopes = [
  { value: 'read', label: 'Read', hint: 'See locations, runs, events and users.' },
  { value: 'sync', label: 'Sync', hint: 'Start SYNC USERS, SYNC PANEL and REFRESH, for one location or many.' },
  { value: 'import', label: 'Import', hint: 'Upload user lists to write to panels.' },
];

const scopeLabel = Object.fromEntries(scopes.map((s) => [s.value, s.label]));

// showSecret shows a secret the server hands out once, with a Copy button
// and the warning that it cannot be shown again.
export function showSecret({ title, intro, secret, label = 'Secret' }) {
  const status = h('p', { class: 'hint', role: 'status' });
  const box = h('output', { class: 'secret', id: 'shown-secret', 'aria-label': label }, secret);
  const copy = async () => {
    try {
      await navigator.clipboard.writeText(secret);
      status.textContent = 'Copied to the clipboard.';
    } catch {
      const range = document.createRange();
      range.selectNodeContents(box);
      const sel = window.getSelection();
      sel.removeAllRanges();
      sel.addRange(range);
      status.textContent = 'Select all is done: press Ctrl+C (or ⌘C) to copy.';
    }
    return false;
  };
  return dialog({
    title,
    content: [
      h('p', {}, intro),
      box,
      status,
      h('p', { class: 'alert alert-warn secret-warning' }, h('strong', {}, 'You will not see it again. '),
        'Only a digest of it is kept, so store it somewhere safe now. If it is lost, create a new one.'),
    ],
    buttons: [
      { label: 'Copy', action: copy },
      { label: 'I have stored it', value: true, primary: true },
    ],
  });
}

export async function render(ctx) {
  const admin = canAdminister(ctx.me);
  const createButton = admin
    ? h('button', { type: 'button', class: 'primary', onclick: () => create(ctx, load) }, 'Create API key…')
    : null;
  const list = h('div');
  fill(ctx.main,
    pageHeader('API keys', createButton),
    h('p', { class: 'intro' }, 'API keys let your own scripts and integrations use panelsync: start syncs, read what happened, or upload user lists. Each key can do only what its scopes allow, and can be revoked at any time.'),
    list);

  async function load() {
    fill(list, h('p', { class: 'loading', role: 'status' }, 'Loading…'));
    let keys;
    try {
      keys = (await ctx.client.get('/v1/api-keys')).items || [];
    } catch (err) {
      if (!ctx.current()) return;
      fill(list, err.code === 'forbidden'
        ? h('div', { class: 'alert alert-info' }, h('p', {}, 'Only an owner or administrator of the account can see and manage API keys.'))
        : errorBox(err, load));
      return;
    }
    if (!ctx.current()) return;
    if (!keys.length) {
      fill(list, empty(admin ? 'No API key yet. Create one for each script or integration, with only the scopes it needs.' : 'No API key yet.'));
      return;
    }
    const tbody = h('tbody', {}, keys.map((k) => keyRow(ctx, k, load, admin)));
    fill(list, tableOf(['Name', 'Key starts with', 'Scopes', 'Status', 'Last used', 'Expires', ''], tbody, 'API keys, newest first'));
  }
  await load();
}

function keyState(k) {
  if (k.revoked_at) return { text: 'Revoked', tone: 'neutral', active: false };
  if (k.expires_at && new Date(k.expires_at).getTime() <= Date.now()) return { text: 'Expired', tone: 'neutral', active: false };
  return { text: 'Active', tone: 'good', active: true };
}

function keyRow(ctx, k, reload, admin) {
  const st = keyState(k);
  const nameId = `key-${k.id}-name`;
  return h('tr', { dataset: { keyId: k.id }, class: st.active ? '' : 'row-muted' },
    h('td', { 'data-label': 'Name' }, h('div', {},
      h('span', { class: 'line', id: nameId }, k.name),
      h('span', { class: 'line muted small' }, 'created ', timeEl(k.created_at)))),
    h('td', { 'data-label': 'Key starts with', class: 'mono' }, k.prefix),
    h('td', { 'data-label': 'Scopes' }, (k.scopes || []).map((s) => scopeLabel[s] || s).join(', ')),
    h('td', { 'data-label': 'Status' }, badge(st.text, st.tone)),
    h('td', { 'data-label': 'Last used' }, k.last_used_at ? timeEl(k.last_used_at) : h('span', { class: 'muted' }, 'Never')),
    h('td', { 'data-label': 'Expires' }, k.expires_at ? timeEl(k.expires_at) : h('span', { class: 'muted' }, 'Never')),
    h('td', { 'data-label': '' }, admin && !k.revoked_at
      ? h('button', { type: 'button', class: 'danger-outline', 'aria-describedby': nameId, onclick: (ev) => revoke(ctx, k, reload, ev.currentTarget) }, 'Revoke…')
      : null));
}

async function revoke(ctx, k, reload, button) {
  const ok = await confirm({
    title: `Revoke the key "${k.name}"?`,
    message: `Scripts using the key that starts with ${k.prefix} stop working at once: every request they make is refused. This cannot be undone; a new key would be needed.`,
    confirmLabel: 'Revoke key',
    danger: true,
  });
  if (!ok) return;
  try {
    await busy(button, () => ctx.client.delete(`/v1/api-keys/${encodeURIComponent(k.id)}`));
    toast(`The key "${k.name}" was revoked.`, 'good');
  } catch (err) {
    toast(errorText(err), 'error');
  }
  if (ctx.current()) await reload();
}

// expiry answers the expires_at to send for the chosen option, or
// undefined for a key that works until revoked.
function expiry(choice, date) {
  if (choice === 'never') return undefined;
  if (choice === 'date') {
    if (!date) return '';
    // The key works through the whole chosen day, in the browser's time zone.
    return new Date(`${date}T23:59:59`).toISOString();
  }
  const d = new Date();
  d.setDate(d.getDate() + Number(choice));
  return d.toISOString();
}

async function create(ctx, reload) {
  const name = h('input', { type: 'text', name: 'name', maxlength: '200', required: true, autocomplete: 'off' });
  const boxes = scopes.map((s) => h('input', { type: 'checkbox', name: 'scopes', value: s.value, id: `scope-${s.value}` }));
  const scopeSet = h('fieldset', { class: 'checks', name: 'scopes' },
    h('legend', {}, 'What the key may do'),
    scopes.map((s, i) => field(s.label, boxes[i], s.hint)));
  const when = h('select', { name: 'expiry' },
    h('option', { value: 'never' }, 'Never (until revoked)'),
    h('option', { value: '30' }, 'In 30 days'),
    h('option', { value: '90', selected: true }, 'In 90 days'),
    h('option', { value: '365' }, 'In a year'),
    h('option', { value: 'date' }, 'On a date…'));
  const date = h('input', { type: 'date', name: 'expires_at', min: new Date(Date.now() + 86400000).toISOString().slice(0, 10) });
  const dateField = field('Expiry date', date, 'The key works until the end of this day.');
  dateField.hidden = true;
  when.addEventListener('change', () => { dateField.hidden = when.value !== 'date'; });
  const alert = h('div', { class: 'alert alert-bad', role: 'alert', hidden: true });
  const form = h('form', { novalidate: true, onsubmit: (ev) => ev.preventDefault() },
    alert,
    field('Name', name, 'What the key is for, such as "Nightly user import". You will see it in the list and the audit log.'),
    scopeSet,
    field('Expires', when),
    dateField);

  let created = null;
  const submit = async () => {
    alert.hidden = true;
    fieldErrors(form, null);
    const chosen = boxes.filter((b) => b.checked).map((b) => b.value);
    const local = [];
    if (!name.value.trim()) local.push({ field: 'name', message: 'Give the key a name.' });
    if (!chosen.length) local.push({ field: 'scopes', message: 'Choose at least one thing the key may do.' });
    const expiresAt = expiry(when.value, date.value);
    if (expiresAt === '') local.push({ field: 'expires_at', message: 'Choose the day the key stops working.' });
    if (local.length) {
      fieldErrors(form, { problem: { errors: local } });
      form.querySelector('[aria-invalid="true"]')?.focus();
      return false;
    }
    const body = { name: name.value.trim(), scopes: chosen };
    if (expiresAt) body.expires_at = expiresAt;
    try {
      created = await ctx.client.post('/v1/api-keys', body);
      return true;
    } catch (err) {
      if (err.problem?.field === 'expires_at' && when.value !== 'date') {
        alert.textContent = errorText(err);
        alert.hidden = false;
      } else if (!fieldErrors(form, err)) {
        alert.textContent = errorText(err);
        alert.hidden = false;
      }
      return false;
    }
  };
  const ok = await dialog({
    title: 'Create API key',
    content: form,
    buttons: [
      { label: 'Cancel', value: false },
      { label: 'Create key', value: true, primary: true, action: submit },
    ],
  });
  if (!ok || !created) return;
  await showSecret({
    title: `Your new API key "${created.api_key?.name || name.value.trim()}"`,
    intro: 'Send it with each request as the header Authorization: Bearer followed by the key.',
    secret: created.secret,
    label: 'The new API key',
  });
  if (ctx.current()) await reload();
}
