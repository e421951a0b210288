// My account: who is signed in, a new password, and for support staff the
// customer accounts that let them in, with a way to act on one and back.

import { h, fill, field, busy, errorText, fieldErrors, timeEl, badge, pageHeader, empty, errorBox } from '../ui.js';
import { roleLabel, loading } from './people-common.js';

export async function render(ctx) {
  const body = h('div', {}, loading());
  fill(ctx.main, pageHeader('My account'), body);
  let me;
  try {
    me = await ctx.client.get('/v1/me');
  } catch (err) {
    if (!ctx.current()) return;
    fill(body, errorBox(err, () => ctx.app.route()));
    return;
  }
  if (!ctx.current()) return;
  fill(body,
    whoAmI(me),
    me.role === 'support' ? supportAccounts(ctx, me) : null,
    passwordSection(ctx));
}

function whoAmI(me) {
  // A support login acting under a grant looks at a customer's account
  // that is not its own.
  const acting = me.home_account_id && me.account_id !== me.home_account_id;
  return h('section', { class: 'card', 'aria-labelledby': 'me-title' },
    h('h2', { id: 'me-title', class: 'card-title' }, 'Signed in as'),
    h('dl', { class: 'facts-list' },
      h('dt', {}, 'Name'), h('dd', {}, me.name || '—'),
      h('dt', {}, 'E-mail'), h('dd', { class: 'wrap-anywhere' }, me.email),
      h('dt', {}, acting ? 'Looking at' : 'Account'), h('dd', { class: 'wrap-anywhere' }, me.account_name || '—'),
      h('dt', {}, 'Role'), h('dd', {}, roleLabel[me.role] || me.role)));
}

// supportAccounts lists the customer accounts a support login may look
// at now, and which one the console is looking at.
function supportAccounts(ctx, me) {
  const acting = me.account_id && me.account_id !== me.home_account_id ? me.account_id : '';
  const grants = me.grants || [];
  const actingName = me.account_name || grants.find((g) => g.account_id === acting)?.account_name || 'a customer account';
  const status = h('div', { class: 'outcome', 'aria-live': 'polite' });
  const actOn = (accountId) => async (ev) => busy(ev.currentTarget, async () => {
    const was = ctx.client.actingAccount;
    ctx.client.setActingAccount(accountId);
    try {
      await ctx.app.loadMe();
    } catch (err) {
      ctx.client.setActingAccount(was);
      fill(status, h('div', { class: 'alert alert-bad', role: 'alert' }, h('p', {},
        err.status === 403 ? 'That account no longer lets you in: its access may have been revoked or expired.' : errorText(err))));
      return;
    }
    // Back home, the support login has no locations of its own: the
    // list of accounts to choose from is where it goes on.
    ctx.navigate(accountId ? '/locations' : '/account');
  });
  const rows = grants.map((g) => {
    const current = g.account_id === acting;
    return h('tr', {},
      h('td', { 'data-label': 'Account' }, g.account_name, current ? [' ', badge('Acting on it now', 'info')] : null),
      h('td', { 'data-label': 'Access until' }, g.expires_at ? timeEl(g.expires_at) : 'Until revoked'),
      h('td', { 'data-label': '' }, current
        ? h('a', { class: 'button', href: '#/locations' }, 'Go to its locations')
        : h('button', { type: 'button', class: 'primary', onclick: actOn(g.account_id) }, `Act on ${g.account_name}`)));
  });
  return h('section', { class: 'card', 'aria-labelledby': 'grants-title' },
    h('h2', { id: 'grants-title', class: 'card-title' }, 'Customer accounts you can see'),
    h('p', { class: 'muted' }, 'Customers let support staff look at their account, read-only, for a while. Choose one to see its locations, events and audit log.'),
    acting
      ? h('div', { class: 'alert alert-info' },
        h('p', {}, `You are acting on ${actingName.replace(/\.$/, '')}.`),
        h('button', { type: 'button', onclick: actOn('') }, 'Back to my home account'))
      : null,
    status,
    grants.length
      ? h('div', { class: 'table-wrap' }, h('table', { class: 'responsive' },
        h('caption', { class: 'visually-hidden' }, 'Customer accounts that granted you access'),
        h('thead', {}, h('tr', {}, ['Account', 'Access until', ''].map((c) => h('th', { scope: 'col' }, c)))),
        h('tbody', {}, rows)))
      : empty('No customer account has given you access right now. A customer\'s owner or administrator grants it under Logins, Support access.'));
}

function passwordSection(ctx) {
  const current = h('input', { type: 'password', name: 'current_password', autocomplete: 'current-password', required: true });
  const next = h('input', { type: 'password', name: 'new_password', autocomplete: 'new-password', required: true, minlength: '12', maxlength: '128' });
  const again = h('input', { type: 'password', name: 'repeat_password', autocomplete: 'new-password', required: true });
  const submit = h('button', { type: 'submit', class: 'primary' }, 'Change password');
  const status = h('div', { class: 'outcome', 'aria-live': 'polite' });
  const form = h('form', { class: 'password-form', novalidate: true, 'aria-labelledby': 'password-title' },
    field('Current password', current),
    field('New password', next, '12 to 128 characters, different from the current one.'),
    field('Repeat the new password', again),
    h('div', { class: 'form-actions' }, submit));
  const problem = (text) => fill(status, h('div', { class: 'alert alert-bad', role: 'alert' }, h('p', {}, text)));
  form.addEventListener('submit', (ev) => {
    ev.preventDefault();
    fill(status);
    fieldErrors(form, null);
    if (!current.value || !next.value) {
      problem('Enter your current password and the new one.');
      (current.value ? next : current).focus();
      return;
    }
    if (next.value !== again.value) {
      fieldErrors(form, { problem: { field: 'repeat_password', detail: 'the two new passwords differ' } });
      again.focus();
      return;
    }
    busy(submit, async () => {
      try {
        await ctx.client.post('/v1/auth/password', { current_password: current.value, new_password: next.value });
        form.reset();
        fill(status, h('div', { class: 'alert alert-good', role: 'status' },
          h('p', {}, 'Your password is changed. Every other session signed in as you has ended: sign in there again with the new password. This one stays signed in.')));
      } catch (err) {
        if (fieldErrors(form, err)) {
          form.querySelector('[aria-invalid="true"]')?.focus();
        } else {
          problem(errorText(err));
        }
      }
    });
  });
  return h('section', { class: 'card', 'aria-labelledby': 'password-title' },
    h('h2', { id: 'password-title', class: 'card-title' }, 'Change password'),
    status,
    form);
}
