// The console's only way to the server: the REST API of shared/API.md.
// It keeps the session's token pair, refreshes the access token when the
// server says it expired (once, however many requests noticed), and
// turns every problem document into an ApiError.

const storageKey = 'panelsync.session';

// ApiError is a failed request: the HTTP status and the problem document
// the server sent (code, title, detail, errors).
export class ApiError extends Error {
  constructor(status, problem) {
    super(problem.detail || problem.title || `HTTP ${status}`);
    this.status = status;
    this.code = problem.code || (status >= 500 ? 'internal' : 'invalid_request');
    this.problem = problem;
  }
}

// The token pair lives in sessionStorage: it survives a reload of the tab
// but not the tab itself, and two tabs never share one refresh token
// (rotation would make the second tab's refresh look like a replay and end
// both sessions).
function loadSession() {
  try {
    return JSON.parse(sessionStorage.getItem(storageKey)) || null;
  } catch {
    return null;
  }
}

function saveSession(session) {
  if (session) sessionStorage.setItem(storageKey, JSON.stringify(session));
  else sessionStorage.removeItem(storageKey);
}

// Client holds one tab's session. Listeners of 'signedout' learn that the
// session ended (a 401 that a refresh cannot cure, or sign-out).
export class Client extends EventTarget {
  constructor() {
    super();
    this.session = loadSession();
    this.refreshing = null;
    // actingAccount is the customer account a support login acts on; it
    // is sent as X-Account-Id.
    this.actingAccount = this.session?.actingAccount || '';
  }

  get signedIn() {
    return Boolean(this.session?.access_token);
  }

  setActingAccount(accountId) {
    this.actingAccount = accountId || '';
    if (this.session) {
      this.session.actingAccount = this.actingAccount;
      saveSession(this.session);
    }
  }

  async signIn(email, password) {
    const pair = await this.request('POST', '/v1/auth/login', { body: { email, password }, anonymous: true });
    this.keep(pair);
  }

  // keep stores a token pair the server handed out (sign-in, invitation).
  keep(pair) {
    this.session = { access_token: pair.access_token, refresh_token: pair.refresh_token, actingAccount: '' };
    this.actingAccount = '';
    saveSession(this.session);
  }

  async signOut() {
    if (this.signedIn) {
      try {
        await this.request('POST', '/v1/auth/logout', { noRetry: true });
      } catch {
        // The session ends here whatever the server answered.
      }
    }
    this.end('signed_out');
  }

  end(reason) {
    this.session = null;
    this.actingAccount = '';
    saveSession(null);
    this.dispatchEvent(new CustomEvent('signedout', { detail: { reason } }));
  }

  // refresh swaps the refresh token for a new pair. Concurrent callers
  // share one request, so the rotated token is never replayed.
  refresh() {
    if (!this.refreshing) {
      const token = this.session?.refresh_token;
      this.refreshing = (async () => {
        try {
          if (!token) throw new ApiError(401, { code: 'unauthorized', detail: 'Your session has ended.' });
          const pair = await this.request('POST', '/v1/auth/refresh', { body: { refresh_token: token }, anonymous: true });
          this.session = { ...this.session, access_token: pair.access_token, refresh_token: pair.refresh_token };
          saveSession(this.session);
        } finally {
          this.refreshing = null;
        }
      })();
    }
    return this.refreshing;
  }

  // request sends one API call. body is sent as JSON, form (a FormData)
  // as multipart; account overrides the acting account. It answers the
  // parsed JSON (null for 204), or the Response itself with raw.
  async request(method, path, opts = {}) {
    const headers = { Accept: 'application/json' };
    let body;
    if (opts.form) {
      body = opts.form;
    } else if (opts.body !== undefined) {
      headers['Content-Type'] = 'application/json';
      body = JSON.stringify(opts.body);
    }
    if (!opts.anonymous && this.session?.access_token) {
      headers.Authorization = `Bearer ${this.session.access_token}`;
    }
    const account = opts.account ?? this.actingAccount;
    if (!opts.anonymous && account) headers['X-Account-Id'] = account;
    let res;
    try {
      res = await fetch(path, { method, headers, body, credentials: 'omit', cache: 'no-store' });
    } catch {
      throw new ApiError(0, { code: 'network', detail: 'The server could not be reached. Check your connection; the console retries when you try again.' });
    }
    if (res.status === 401 && !opts.anonymous && !opts.noRetry) {
      const problem = await readProblem(res);
      if (problem.code === 'token_expired') {
        try {
          await this.refresh();
        } catch {
          this.end('expired');
          throw new ApiError(401, problem);
        }
        return this.request(method, path, { ...opts, noRetry: true });
      }
      this.end('unauthorized');
      throw new ApiError(401, problem);
    }
    if (!res.ok) {
      throw new ApiError(res.status, await readProblem(res));
    }
    if (opts.raw) return res;
    if (res.status === 204) return null;
    const type = res.headers.get('Content-Type') || '';
    return type.includes('json') ? res.json() : res.text();
  }

  get(path, opts) { return this.request('GET', path, opts); }
  post(path, body, opts = {}) { return this.request('POST', path, { ...opts, body }); }
  patch(path, body, opts = {}) { return this.request('PATCH', path, { ...opts, body }); }
  put(path, body, opts = {}) { return this.request('PUT', path, { ...opts, body }); }
  delete(path, opts) { return this.request('DELETE', path, opts); }

  // download fetches a file the API serves (a run's data) and hands it to
  // the browser as a download named filename.
  async download(path, filename) {
    const res = await this.request('GET', path, { raw: true });
    const blob = await res.blob();
    const url = URL.createObjectURL(blob);
    const a = document.createElement('a');
    a.href = url;
    a.download = filename;
    document.body.append(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(url), 10000);
  }
}

async function readProblem(res) {
  try {
    const p = await res.json();
    if (p && typeof p === 'object') return p;
  } catch {
    // Not a problem document: a proxy's page, say.
  }
  return { status: res.status, title: res.statusText, code: res.status >= 500 ? 'internal' : '' };
}

// qs builds a query string from the defined, non-empty values.
export function qs(params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) {
    if (v === undefined || v === null || v === '') continue;
    if (Array.isArray(v)) v.forEach((x) => q.append(k, x));
    else q.set(k, String(v));
  }
  const s = q.toString();
  return s ? `?${s}` : '';
}

// pageAll follows next_cursor until every item of a list is read, up to
// max items, for the lists a page shows whole (locations of an account).
export async function pageAll(client, path, params = {}, max = 5000, opts = {}) {
  const items = [];
  let cursor = '';
  do {
    const page = await client.get(path + qs({ ...params, cursor }), opts);
    items.push(...page.items);
    cursor = page.next_cursor || '';
  } while (cursor && items.length < max);
  return items;
}
