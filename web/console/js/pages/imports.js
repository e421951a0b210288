// Import: upload a user list (CSV or JSON), with an optional control file,
// for all locations, a group or chosen ones. Problems in a file are listed
// row by row; an accepted upload links to its batch.

import { pageAll } from '../api.js';
import {
  h, fill, field, busy, errorText, fieldErrors, pageHeader, errorBox, empty,
} from '../ui.js';
import { canAdminister } from './locations.js';
import { tableOf, sentence } from './runs.js';

const template = 'external_id,name,email,user_number,authority,partitions,schedule,code\r\n'
  + 'E-1001,Jane Doe,jane.doe@example.com,2,standard,1;2,always,\r\n';

const fileLabel = { data: 'Data file', control: 'Control file' };
const fileWords = { data: 'The data file', control: 'The control file' };

export async function render(ctx) {
  const admin = canAdminister(ctx.me);
  const body = h('div', {}, h('p', { class: 'loading', role: 'status' }, 'Loading…'));
  fill(ctx.main,
    pageHeader('Import', h('button', { type: 'button', onclick: downloadTemplate }, 'Download a template (CSV)')),
    h('p', { class: 'intro' }, 'Upload a list of users exported from your own systems. Each location it is for gets an import run: the list is compared with the users on record, held for someone to Apply when it changes more than the location\'s safety threshold allows, and otherwise written to the panel at once.'),
    body);

  if (!admin) {
    fill(body, h('div', { class: 'alert alert-info' }, h('p', {}, 'Only an owner or administrator of the account can upload user lists. Ask one of them, or use an API key with the import scope.')));
    return;
  }

  let locations;
  try {
    locations = await pageAll(ctx.client, '/v1/locations', { limit: 200 });
  } catch (err) {
    if (ctx.current()) fill(body, errorBox(err, () => ctx.app.route()));
    return;
  }
  if (!ctx.current()) return;
  if (!locations.length) {
    fill(body, empty('This account has no locations yet, so there is nothing to import users into.'));
    return;
  }
  fill(body, uploadForm(ctx, locations));
}

function downloadTemplate() {
  const url = URL.createObjectURL(new Blob([template], { type: 'text/csv' }));
  const a = h('a', { href: url, download: 'panelsync-users-template.csv', hidden: true });
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10000);
}

function uploadForm(ctx, locations) {
  locations.sort((a, b) => a.name.localeCompare(b.name));
  const groups = [...new Set(locations.map((l) => l.group).filter(Boolean))].sort();
  const preselected = ctx.query.get('location');

  const data = h('input', { type: 'file', name: 'data', accept: '.csv,.json,text/csv,application/json', required: true });
  const control = h('input', { type: 'file', name: 'control', accept: '.json,application/json' });

  const scopeRadio = (value, label) => {
    const input = h('input', { type: 'radio', name: 'scope-choice', value, id: `scope-${value}` });
    return { input, el: h('div', { class: 'field field-check' }, input, h('label', { for: input.id }, label)) };
  };
  const one = scopeRadio('locations', 'Chosen locations');
  const grp = scopeRadio('group', 'One group');
  const all = scopeRadio('all', `All locations (${locations.length})`);
  if (!groups.length) grp.input.disabled = true;

  const groupSelect = h('select', { name: 'group' }, groups.map((g) => h('option', { value: g }, g)));
  const groupField = field('Group', groupSelect);
  const boxes = locations.map((l) => h('input', {
    type: 'checkbox', name: 'location_ids', value: l.id, id: `imp-loc-${l.id}`, checked: l.id === preselected,
  }));
  const filter = h('input', { type: 'search', placeholder: 'Filter by name or group', 'aria-label': 'Filter the locations' });
  const locationList = h('fieldset', { class: 'checks location-checks', name: 'location_ids' },
    h('legend', {}, 'Locations'),
    locations.length > 8 ? filter : null,
    h('div', { class: 'check-list' }, locations.map((l, i) => h('div', { class: 'field field-check', dataset: { search: `${l.name} ${l.group || ''}`.toLowerCase() } },
      boxes[i], h('label', { for: boxes[i].id }, l.name, l.group ? h('span', { class: 'muted' }, ` · ${l.group}`) : null)))));
  filter.addEventListener('input', () => {
    const q = filter.value.trim().toLowerCase();
    for (const row of locationList.querySelectorAll('.check-list > .field')) row.hidden = Boolean(q) && !row.dataset.search.includes(q);
  });

  const scopeSet = h('fieldset', { class: 'plain', name: 'scope' },
    h('legend', {}, 'Which locations the list is for'),
    h('div', { class: 'radio-row' }, one.el, grp.el, all.el),
    groupField,
    locationList,
    h('p', { class: 'hint' }, 'A list for more than one location needs a control file that names its location column; each row then says which location it is for, by name or id.'));
  const showScope = () => {
    const v = scopeSet.querySelector('input[name="scope-choice"]:checked')?.value;
    groupField.hidden = v !== 'group';
    locationList.hidden = v !== 'locations';
  };
  scopeSet.addEventListener('change', (ev) => { if (ev.target.name === 'scope-choice') showScope(); });
  one.input.checked = true;
  showScope();

  const submit = h('button', { type: 'submit', class: 'primary' }, 'Upload');
  const result = h('div', { class: 'outcome', role: 'status', 'aria-live': 'polite', tabindex: '-1' });
  const form = h('form', { class: 'card import-form', novalidate: true },
    field('Data file', data, 'CSV (UTF-8) or JSON, up to 10 MB and 50,000 users. Columns: external_id, name, email, user_number, authority, partitions, schedule and code (optional, 4 to 8 digits). A spreadsheet must be saved as CSV first.'),
    field('Control file (optional)', control, 'JSON that maps your column names onto those fields, names the location column, and lists user numbers an import must never touch.'),
    scopeSet,
    h('div', { class: 'form-actions' }, submit));

  form.addEventListener('submit', (ev) => {
    ev.preventDefault();
    busy(submit, () => upload(ctx, form, { data, control, scopeSet, groupSelect, boxes, result }));
  });
  return h('div', {}, form, result);
}

async function upload(ctx, form, { data, control, scopeSet, groupSelect, boxes, result }) {
  fill(result);
  fieldErrors(form, null);
  const scope = scopeSet.querySelector('input[name="scope-choice"]:checked')?.value || 'locations';
  const chosen = boxes.filter((b) => b.checked).map((b) => b.value);
  const local = [];
  if (!data.files.length) local.push({ field: 'data', message: 'Choose the file with the users.' });
  if (scope === 'locations' && !chosen.length) local.push({ field: 'location_ids', message: 'Choose at least one location.' });
  if (scope === 'group' && !groupSelect.value) local.push({ field: 'group', message: 'Choose a group.' });
  if (local.length) {
    fieldErrors(form, { problem: { errors: local } });
    form.querySelector('[aria-invalid="true"]')?.focus();
    return;
  }

  const fd = new FormData();
  fd.append('data', data.files[0], data.files[0].name);
  if (control.files.length) fd.append('control', control.files[0], control.files[0].name);
  fd.append('scope', scope);
  if (scope === 'group') fd.append('group', groupSelect.value);
  if (scope === 'locations') chosen.forEach((id) => fd.append('location_ids', id));

  let res;
  try {
    res = await ctx.client.request('POST', '/v1/imports', { form: fd });
  } catch (err) {
    if (!ctx.current()) return;
    fill(result, failure(form, err));
    result.focus();
    return;
  }
  if (!ctx.current()) return;
  const b = res.batch;
  const runs = b.total === 1 ? 'one location' : `${b.total} locations`;
  fill(result, h('div', { class: 'alert alert-good' },
    h('p', {}, h('strong', {}, `${res.message || 'User import received'}.`), ` An import run was started for ${runs}${b.failed ? `; ${b.failed} failed at once because the panel could not take it` : ''}.`),
    h('p', {}, 'Runs that change more than a location\'s safety threshold allows are held until someone applies them. '),
    h('p', {}, h('a', { class: 'button primary', href: `#/batches/${encodeURIComponent(b.id)}` }, 'Follow the import'))));
  data.value = '';
  control.value = '';
  result.focus();
}

// failure explains a refused upload: the file's problems row by row, a
// problem of the form next to its field, or the reason in words.
function failure(form, err) {
  const p = err.problem || {};
  if (Array.isArray(p.errors) && p.errors.length) {
    const file = fileWords[p.field] || 'The file';
    const count = p.errors.length + (p.errors_omitted || 0);
    const tbody = h('tbody', {}, p.errors.map((e) => h('tr', {},
      h('td', { 'data-label': 'File' }, fileLabel[e.file] || e.file),
      h('td', { 'data-label': 'Row' }, e.row ? String(e.row) : 'Whole file'),
      h('td', { 'data-label': 'Column' }, e.column || h('span', { class: 'muted' }, '—')),
      h('td', { 'data-label': 'Problem' }, sentence(e.message)))));
    return h('div', { class: 'file-problems' },
      h('div', { class: 'alert alert-bad', role: 'alert' },
        h('p', {}, h('strong', {}, `${file} has ${count} ${count === 1 ? 'problem' : 'problems'}, so nothing was imported.`), ' Correct them and upload the file again.'),
        p.field === 'data' ? h('p', {}, 'Rows are numbered as a spreadsheet shows them: the header is row 1.') : null),
      tableOf(['File', 'Row', 'Column', 'Problem'], tbody, 'Problems found in the upload'),
      p.errors_omitted ? h('p', { class: 'muted' }, `${p.errors_omitted} more ${p.errors_omitted === 1 ? 'problem is' : 'problems are'} not listed.`) : null);
  }
  const placed = fieldErrors(form, err);
  const lines = [h('p', {}, placed ? `${sentence(errorText(err))} See the message next to the field.` : errorText(err))];
  if (err.code === 'conflict') {
    lines.push(h('p', {}, h('a', { href: '#/runs?kind=import&state=awaiting_apply' }, 'See the imports waiting for apply')));
  }
  return h('div', { class: 'alert alert-bad', role: 'alert' }, lines);
}
