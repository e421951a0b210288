// User lookup: find a person by name, e-mail, external id or user number
// across every location of the account, with what each location's panel
// last sent for them. Codes are never part of it, only whether a slot
// has one.

import { qs } from '../api.js';
import { h, fill, timeEl, badge, errorBox, pageHeader, empty, field } from '../ui.js';
import { authorityLabel, loading, plural, setFragmentQuery, yesNo } from './people-common.js';

const typingPause = 350;
const maxQuery = 200;

export async function render(ctx) {
  const input = h('input', {
    type: 'search', name: 'q', autocomplete: 'off', maxlength: String(maxQuery),
    value: ctx.query.get('q') || '', placeholder: 'e.g. Schmidt, ron@example.com or 12',
  });
  const submit = h('button', { type: 'submit', class: 'primary' }, 'Search');
  const form = h('form', { role: 'search', class: 'toolbar lookup-form', novalidate: true },
    field('Name, e-mail, external id or user number', input),
    submit);
  const status = h('p', { class: 'muted', role: 'status', 'aria-live': 'polite' });
  const results = h('div', { class: 'people-results' });
  fill(ctx.main,
    pageHeader('User lookup'),
    h('p', { class: 'muted' }, 'Finds the people on your panels at every location, as the last user sync received them. Codes are never shown.'),
    form, status, results);

  let timer = null;
  let seq = 0;
  let lastQuery = null;

  const search = async (q, cursor = '', more = null) => {
    const mine = ++seq;
    if (!cursor) {
      fill(results, loading('Searching…'));
      status.textContent = '';
    }
    let page;
    try {
      page = await ctx.client.get(`/v1/people${qs({ q, cursor, limit: 50 })}`);
    } catch (err) {
      if (mine !== seq || !ctx.current()) return;
      if (more) more.remove();
      // The API names the search field q, which means nothing to a
      // reader; the problem is said of the search instead.
      if (err.status === 400 && err.problem?.field === 'q') {
        const why = (err.problem.detail || '').replace(/^q\b\s*/, '');
        fill(results, h('div', { class: 'alert alert-bad', role: 'alert' },
          h('p', {}, why ? `The search ${why.replace(/\s*\(.*\)$/, '')}. Change it and search again.` : 'Change the search and try again.')));
        return;
      }
      const box = errorBox(err, () => {
        box.remove();
        search(q, cursor);
      });
      if (cursor) results.append(box);
      else fill(results, box);
      return;
    }
    if (mine !== seq || !ctx.current()) return;
    if (more) more.remove();
    // The API orders people for paging, not reading: each page is shown
    // by name.
    const people = [...page.items].sort((a, b) => (a.name || a.email || '').localeCompare(b.name || b.email || ''));
    if (!cursor) fill(results);
    if (!cursor && !people.length) {
      fill(results, empty(`Nobody matches “${q}”. Try part of a name, a whole e-mail address, an external id or a user number.`));
      status.textContent = 'No one found.';
      return;
    }
    results.append(...people.map(personCard));
    const shown = results.querySelectorAll('.person-card').length;
    status.textContent = page.next_cursor
      ? `Showing the first ${plural(shown, 'person', 'people')} found.`
      : `${plural(shown, 'person', 'people')} found.`;
    if (page.next_cursor) {
      const moreBox = h('div', { class: 'pager' });
      moreBox.append(h('button', {
        type: 'button',
        onclick: (ev) => {
          ev.currentTarget.disabled = true;
          ev.currentTarget.setAttribute('aria-busy', 'true');
          search(q, page.next_cursor, moreBox);
        },
      }, 'Show more people'));
      results.append(moreBox);
    }
  };

  const start = (immediate) => {
    clearTimeout(timer);
    const q = input.value.trim();
    if (q === lastQuery && !immediate) return;
    const run = () => {
      lastQuery = q;
      setFragmentQuery('/people', { q });
      if (!q) {
        seq++;
        status.textContent = '';
        fill(results, empty('Type a name, an e-mail address, an external id or a user number to find a person at every location.'));
        return;
      }
      if (q.length > maxQuery) {
        seq++;
        fill(results, h('div', { class: 'alert alert-bad', role: 'alert' }, h('p', {}, `Search for at most ${maxQuery} characters.`)));
        return;
      }
      search(q);
    };
    if (immediate) run();
    else timer = setTimeout(run, typingPause);
  };

  input.addEventListener('input', () => start(false));
  form.addEventListener('submit', (ev) => {
    ev.preventDefault();
    start(true);
  });
  ctx.onCleanup(() => clearTimeout(timer));
  start(true);
  if (!input.value) {
    input.focus();
    ctx.keepFocus = true;
  }
}

// personCard is one person with each of their panel users.
function personCard(p) {
  const title = p.name || p.email || 'Unnamed user';
  const facts = [
    p.email && p.email !== title ? h('span', {}, p.email) : null,
    p.external_id ? h('span', {}, 'External id ', h('span', { class: 'mono' }, p.external_id)) : null,
    p.login_id ? badge('Linked to a login', 'good') : badge('Not linked', 'neutral'),
  ];
  const rows = p.locations.map((l) => h('tr', {},
    h('td', { 'data-label': 'Location' }, h('a', { href: `#/locations/${encodeURIComponent(l.location_id)}/users` }, l.location_name)),
    h('td', { 'data-label': 'User number' }, String(l.user_number)),
    h('td', { 'data-label': 'Name on panel' }, h('span', {}, l.name || h('span', { class: 'muted' }, '—'),
      l.email && l.email !== p.email ? h('span', { class: 'muted block' }, l.email) : null)),
    h('td', { 'data-label': 'Authority' }, authorityLabel[l.authority] || l.authority),
    h('td', { 'data-label': 'Partitions' }, l.partitions?.length ? l.partitions.join(', ') : h('span', { class: 'muted' }, 'None')),
    h('td', { 'data-label': 'Has a code' }, yesNo(l.has_code)),
    h('td', { 'data-label': 'Linked' }, yesNo(l.linked)),
    h('td', { 'data-label': 'Last received' }, h('span', {},
      l.last_received_at ? timeEl(l.last_received_at) : h('span', { class: 'muted' }, 'Not yet'),
      l.run_id ? h('a', { class: 'block', href: `#/runs/${encodeURIComponent(l.run_id)}` }, 'View the sync run') : null))));
  return h('section', { class: 'card person-card' },
    h('h2', {}, title),
    h('p', { class: 'person-facts' }, facts),
    h('div', { class: 'table-wrap' },
      h('table', { class: 'responsive' },
        h('caption', { class: 'visually-hidden' }, `Where ${title} is a panel user`),
        h('thead', {}, h('tr', {},
          ['Location', 'User number', 'Name on panel', 'Authority', 'Partitions', 'Has a code', 'Linked', 'Last received']
            .map((c) => h('th', { scope: 'col' }, c)))),
        h('tbody', {}, rows))),
    p.locations_truncated
      ? h('p', { class: 'hint' }, 'This person is on more locations than one page shows; the first 1,000 by location name are listed.')
      : null);
}
