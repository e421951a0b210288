// Sign in, ask for a password reset, accept an invitation, and choose a
// new password from a reset link.

import { h, fill, field, busy, errorText, fieldErrors, toast } from '../ui.js';

export async function render(ctx) {
  switch (ctx.view) {
    case 'forgot': return forgot(ctx);
    case 'accept': return withToken(ctx, accept);
    case 'reset': return withToken(ctx, reset);
    default: return signIn(ctx);
  }
}

function card(title, ...content) {
  return h('section', { class: 'auth-card' }, h('h1', { tabindex: '-1' }, title), content);
}

function alertLine() {
  return h('div', { class: 'alert alert-bad', role: 'alert', hidden: true });
}

function showAlert(el, text) {
  el.hidden = !text;
  el.textContent = text || '';
}

function signIn(ctx) {
  const email = h('input', { type: 'email', name: 'email', autocomplete: 'username', required: true });
  const password = h('input', { type: 'password', name: 'password', autocomplete: 'current-password', required: true });
  const submit = h('button', { type: 'submit', class: 'primary' }, 'Sign in');
  const alert = alertLine();
  const form = h('form', { novalidate: true },
    alert,
    field('E-mail', email),
    field('Password', password),
    h('div', { class: 'form-actions' }, submit),
    h('p', {}, h('a', { href: '#/forgot' }, 'Forgot your password?')));
  form.addEventListener('submit', (ev) => {
    ev.preventDefault();
    if (!email.value || !password.value) {
      showAlert(alert, 'Enter your e-mail address and password.');
      (email.value ? password : email).focus();
      return;
    }
    busy(submit, async () => {
      try {
        await ctx.client.signIn(email.value.trim(), password.value);
        await ctx.app.loadMe();
        ctx.navigate(safeNext(ctx.query.get('next'), ctx.app.me));
      } catch (err) {
        showAlert(alert, err.code === 'invalid_credentials'
          ? 'That e-mail address and password do not match an active login.'
          : errorText(err));
        password.select();
      }
    });
  });
  fill(ctx.main, card('Sign in to panelsync', form));
  email.focus();
  ctx.keepFocus = true;
}

// safeNext keeps a return path inside the console. Without one, support
// staff start at their live log and everyone else at Locations.
function safeNext(next, me) {
  if (next && next.startsWith('/') && !next.startsWith('//') && !next.startsWith('/signin')) return next;
  return me?.role === 'support' ? '/support' : '/locations';
}

function forgot(ctx) {
  const email = h('input', { type: 'email', name: 'email', autocomplete: 'username', required: true });
  const submit = h('button', { type: 'submit', class: 'primary' }, 'Send reset link');
  const alert = alertLine();
  const form = h('form', { novalidate: true }, alert, field('E-mail', email), h('div', { class: 'form-actions' }, submit),
    h('p', {}, h('a', { href: '#/signin' }, 'Back to sign in')));
  form.addEventListener('submit', (ev) => {
    ev.preventDefault();
    busy(submit, async () => {
      try {
        await ctx.client.post('/v1/auth/password-reset', { email: email.value.trim() }, { anonymous: true });
        fill(ctx.main, card('Check your e-mail',
          h('p', {}, `If ${email.value.trim()} belongs to a login, a link to choose a new password is on its way. It works once.`),
          h('p', {}, h('a', { href: '#/signin' }, 'Back to sign in'))));
      } catch (err) {
        if (!fieldErrors(form, err)) showAlert(alert, errorText(err));
      }
    });
  });
  fill(ctx.main, card('Reset your password', h('p', {}, 'Enter the e-mail address you sign in with.'), form));
}

// withToken reads the single-use token a mailed link carries in its
// fragment, then removes it from the address bar and the history.
function withToken(ctx, page) {
  const token = new URLSearchParams(location.hash.replace(/^#/, '')).get('token');
  if (!token) {
    fill(ctx.main, card('This link is incomplete',
      h('p', {}, 'Open the link from the e-mail exactly as it was sent, or ask for a new one.'),
      h('p', {}, h('a', { href: '/#/signin' }, 'Go to sign in'))));
    return;
  }
  history.replaceState(null, '', location.pathname);
  page(ctx, token);
}

function passwordForm(ctx, { title, intro, label, send }) {
  const password = h('input', { type: 'password', name: 'password', autocomplete: 'new-password', required: true, minlength: '12' });
  const again = h('input', { type: 'password', name: 'again', autocomplete: 'new-password', required: true });
  const submit = h('button', { type: 'submit', class: 'primary' }, label);
  const alert = alertLine();
  const form = h('form', { novalidate: true }, alert,
    field('New password', password, 'At least 12 characters.'),
    field('Repeat the new password', again),
    h('div', { class: 'form-actions' }, submit));
  form.addEventListener('submit', (ev) => {
    ev.preventDefault();
    if (password.value !== again.value) {
      showAlert(alert, 'The two passwords differ.');
      again.select();
      return;
    }
    busy(submit, async () => {
      try {
        await send(password.value);
      } catch (err) {
        // The API names the password field new_password or password.
        const msg = err.problem?.detail;
        showAlert(alert, err.status === 400 && msg ? `${msg.charAt(0).toUpperCase()}${msg.slice(1)}.` : errorText(err));
      }
    });
  });
  fill(ctx.main, card(title, h('p', {}, intro), form));
  password.focus();
  ctx.keepFocus = true;
}

function accept(ctx, token) {
  passwordForm(ctx, {
    title: 'Welcome to panelsync',
    intro: 'Choose the password you will sign in with.',
    label: 'Accept invitation',
    send: async (password) => {
      const pair = await ctx.client.post('/v1/auth/invitations/accept', { token, password }, { anonymous: true });
      ctx.client.keep(pair);
      await ctx.app.loadMe();
      toast('Your login is ready.', 'good');
      ctx.navigate('/locations');
    },
  });
}

function reset(ctx, token) {
  passwordForm(ctx, {
    title: 'Choose a new password',
    intro: 'Your other sessions end when the password changes.',
    label: 'Save password',
    send: async (password) => {
      await ctx.client.post('/v1/auth/password-reset/confirm', { token, new_password: password }, { anonymous: true });
      toast('Your password is changed. Sign in with it.', 'good');
      ctx.navigate('/signin');
    },
  });
}
