// The console's shell: who is signed in, the navigation, and a router that
// loads each page's module when it is first visited, so the first load
// carries only the shell and the page asked for.

import { Client } from './api.js';
import { h, fill, errorBox, toast } from './ui.js';

// Each route: a pattern of the fragment path, the module that renders it,
// and who may see it in the navigation. Pages check permissions through
// the API; the navigation only hides what would answer 403.
const routes = [
  { path: '/signin', module: './pages/signin.js', public: true },
  { path: '/forgot', module: './pages/signin.js', public: true, view: 'forgot' },
  { path: '/locations', module: './pages/locations.js', nav: 'Locations', roles: 'all' },
  { path: '/locations/:id/users', module: './pages/users.js', roles: 'all' },
  { path: '/users', module: './pages/users.js', nav: 'Users', roles: 'all' },
  { path: '/events', module: './pages/events.js', nav: 'Events', roles: 'all' },
  { path: '/support', module: './pages/support.js', nav: 'Live log', roles: 'support' },
  { path: '/runs', module: './pages/runs.js', nav: 'Sync runs', roles: 'all' },
  { path: '/runs/:id', module: './pages/run.js', roles: 'all' },
  { path: '/batches/:id', module: './pages/batch.js', roles: 'all' },
  { path: '/locations/:id/settings', module: './pages/settings.js', roles: 'all' },
  { path: '/imports', module: './pages/imports.js', nav: 'Import', roles: 'admin' },
  { path: '/people', module: './pages/lookup.js', nav: 'User lookup', roles: 'all' },
  { path: '/links', module: './pages/links.js', nav: 'Linking', roles: 'admin' },
  { path: '/logins', module: './pages/logins.js', nav: 'Logins', roles: 'admin' },
  { path: '/api-keys', module: './pages/apikeys.js', nav: 'API keys', roles: 'admin' },
  { path: '/audit', module: './pages/audit.js', nav: 'Audit log', roles: 'auditor' },
  { path: '/account', module: './pages/account.js', roles: 'all' },
];

// The two pages mailed links open are real paths (their token is in the
// fragment, which never reaches a server log).
const pathPages = {
  '/accept-invitation': { module: './pages/signin.js', view: 'accept', public: true },
  '/reset-password': { module: './pages/signin.js', view: 'reset', public: true },
};

function match(pattern, path) {
  const p = pattern.split('/');
  const a = path.split('/');
  if (p.length !== a.length) return null;
  const params = {};
  for (let i = 0; i < p.length; i++) {
    if (p[i].startsWith(':')) params[p[i].slice(1)] = decodeURIComponent(a[i]);
    else if (p[i] !== a[i]) return null;
  }
  return params;
}

// allowed says whether a role sees a route in the navigation.
export function allowed(roles, me) {
  if (!me) return false;
  const role = me.role;
  switch (roles) {
    case 'all': return role !== 'support' || Boolean(me.account_id && me.account_id !== me.home_account_id);
    case 'support': return role === 'support';
    case 'admin': return role === 'owner' || role === 'admin';
    case 'auditor': return role === 'owner' || role === 'admin' || (role === 'support' && me.account_id !== me.home_account_id);
    default: return false;
  }
}

class Console {
  constructor() {
    this.client = new Client();
    this.me = null;
    this.main = document.getElementById('main');
    this.nav = document.getElementById('nav');
    this.cleanups = [];
    this.renderSeq = 0;
    this.client.addEventListener('signedout', (ev) => this.signedOut(ev.detail.reason));
    window.addEventListener('hashchange', () => this.route());
    const toggle = document.getElementById('menu-toggle');
    toggle.addEventListener('click', () => {
      const open = toggle.getAttribute('aria-expanded') !== 'true';
      toggle.setAttribute('aria-expanded', String(open));
      this.nav.classList.toggle('open', open);
    });
  }

  async start() {
    if (this.client.signedIn) {
      try {
        await this.loadMe();
      } catch {
        // loadMe's 401 already ended the session; anything else is shown
        // by the page that loads next.
      }
    }
    this.route();
  }

  async loadMe() {
    this.me = await this.client.get('/v1/me');
    this.renderChrome();
  }

  // navigate moves to a fragment path, such as '/events?location=…'.
  navigate(path) {
    if (location.pathname !== '/') {
      history.replaceState(null, '', `/#${path}`);
      this.route();
    } else if (location.hash === `#${path}`) {
      this.route();
    } else {
      location.hash = path;
    }
  }

  signedOut(reason) {
    this.me = null;
    this.renderChrome();
    const messages = {
      unauthorized: 'Your session has ended. Sign in again.',
      expired: 'Your session expired. Sign in again.',
    };
    if (messages[reason]) toast(messages[reason], 'info');
    this.navigate(`/signin${reason === 'signed_out' ? '' : `?next=${encodeURIComponent(this.currentPath())}`}`);
  }

  currentPath() {
    const hash = location.hash.replace(/^#/, '');
    return hash && !hash.startsWith('/signin') ? hash : '/locations';
  }

  renderChrome() {
    const toggle = document.getElementById('menu-toggle');
    const who = document.getElementById('whoami');
    if (!this.me) {
      this.nav.hidden = true;
      toggle.hidden = true;
      fill(who);
      return;
    }
    this.nav.hidden = false;
    toggle.hidden = false;
    const links = routes.filter((r) => r.nav && allowed(r.roles, this.me));
    fill(this.nav, h('ul', {}, links.map((r) => h('li', {}, h('a', { href: `#${r.path}`, dataset: { path: r.path } }, r.nav)))));
    fill(who,
      h('a', { href: '#/account', class: 'who' }, this.me.name || this.me.email),
      h('button', { type: 'button', class: 'link', onclick: () => this.client.signOut() }, 'Sign out'));
    this.markCurrent();
  }

  markCurrent() {
    const path = location.hash.replace(/^#/, '').split('?')[0];
    for (const a of this.nav.querySelectorAll('a')) {
      const current = path === a.dataset.path || path.startsWith(`${a.dataset.path}/`);
      if (current) a.setAttribute('aria-current', 'page');
      else a.removeAttribute('aria-current');
    }
  }

  async route() {
    const seq = ++this.renderSeq;
    for (const fn of this.cleanups.splice(0)) {
      try { fn(); } catch { /* a page's cleanup must not stop the next page */ }
    }
    this.nav.classList.remove('open');
    document.getElementById('menu-toggle').setAttribute('aria-expanded', 'false');

    let route;
    let params = {};
    const special = pathPages[location.pathname];
    const [path, query] = location.hash.replace(/^#/, '').split('?');
    if (special && !location.hash.startsWith('#/')) {
      route = special;
    } else {
      for (const r of routes) {
        const m = match(r.path, path || '/locations');
        if (m) {
          route = r;
          params = m;
          break;
        }
      }
    }
    if (!route) {
      this.navigate('/locations');
      return;
    }
    if (!route.public && !this.client.signedIn) {
      this.navigate(`/signin?next=${encodeURIComponent(path || '/locations')}`);
      return;
    }
    if (!route.public && !this.me) {
      try {
        await this.loadMe();
      } catch (err) {
        fill(this.main, errorBox(err, () => this.route()));
        return;
      }
    }
    if (route.public && this.client.signedIn && route.path === '/signin') {
      this.navigate('/locations');
      return;
    }
    this.markCurrent();
    let mod;
    try {
      mod = await import(route.module);
    } catch (err) {
      fill(this.main, errorBox(err, () => this.route()));
      return;
    }
    if (seq !== this.renderSeq) return;
    fill(this.main);
    const ctx = {
      client: this.client,
      me: this.me,
      app: this,
      main: this.main,
      params,
      query: new URLSearchParams(query || ''),
      view: route.view,
      navigate: (p) => this.navigate(p),
      onCleanup: (fn) => this.cleanups.push(fn),
      // current answers whether this render is still the page shown, for
      // work that finishes after the person moved on.
      current: () => seq === this.renderSeq,
    };
    try {
      await mod.render(ctx);
    } catch (err) {
      if (seq !== this.renderSeq) return;
      if (err?.status === 401) return;
      fill(this.main, errorBox(err, () => this.route()));
      return;
    }
    if (seq !== this.renderSeq) return;
    // The mark lets anyone measuring (the browser's performance panel, the
    // browser tests) see when a page became usable.
    performance.mark(`rendered ${route.path || location.pathname}`);
    const heading = this.main.querySelector('h1');
    document.title = heading ? `${heading.textContent} · panelsync` : 'panelsync';
    if (heading && !ctx.keepFocus) heading.focus({ preventScroll: true });
  }
}

const consoleApp = new Console();
consoleApp.start();
