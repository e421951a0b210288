// EventFeed follows an account's Event Log over /v1/realtime. It connects
// with a single-use ticket, subscribes from the last offset it delivered,
// and after any drop reconnects and resumes from there, so the page sees
// every event once and in order.

const pingEvery = 25000;

export class EventFeed {
  // client: the api Client. locationIds: the locations to watch (empty:
  // the whole account). accountId: the account (support staff under a
  // grant). after: the offset already shown (undefined: live only).
  // onEvent(event), onStatus(status, detail), onReset(offset): the log
  // could not be resumed and the page must reload what it shows.
  constructor(client, { locationIds = [], accountId = '', after, onEvent, onStatus = () => {}, onReset }) {
    this.client = client;
    this.locationIds = locationIds;
    this.accountId = accountId;
    this.lastOffset = after ?? null;
    this.onEvent = onEvent;
    this.onStatus = onStatus;
    this.onReset = onReset;
    this.stopped = false;
    this.socket = null;
    this.retries = 0;
    this.timer = null;
    this.pinger = null;
  }

  start() {
    this.stopped = false;
    this.connect();
    return this;
  }

  stop() {
    this.stopped = true;
    clearTimeout(this.timer);
    clearInterval(this.pinger);
    if (this.socket) {
      this.socket.onclose = null;
      this.socket.close(1000, 'page closed');
      this.socket = null;
    }
  }

  // drop cuts the socket as a network failure would; the feed reconnects
  // and resumes by itself.
  drop() {
    if (this.socket) this.socket.close(4000, 'dropped by the page');
  }

  async connect() {
    if (this.stopped) return;
    this.onStatus('connecting');
    let ticket;
    try {
      const res = await this.client.post('/v1/realtime/tickets', undefined, { account: '' });
      ticket = res.ticket;
    } catch (err) {
      if (err.status === 401 || err.status === 403) {
        this.onStatus('closed', err);
        return;
      }
      this.retry();
      return;
    }
    if (this.stopped) return;
    const scheme = location.protocol === 'https:' ? 'wss:' : 'ws:';
    const ws = new WebSocket(`${scheme}//${location.host}/v1/realtime?ticket=${encodeURIComponent(ticket)}`);
    this.socket = ws;
    ws.onopen = () => {
      const frame = { op: 'subscribe' };
      if (this.locationIds.length) frame.location_ids = this.locationIds;
      if (this.lastOffset !== null) frame.after = this.lastOffset;
      if (this.accountId) frame.account_id = this.accountId;
      ws.send(JSON.stringify(frame));
      clearInterval(this.pinger);
      this.pinger = setInterval(() => {
        if (ws.readyState === WebSocket.OPEN) ws.send('{"op":"ping"}');
      }, pingEvery);
    };
    ws.onmessage = (msg) => this.receive(ws, msg.data);
    ws.onclose = (ev) => this.closed(ev);
  }

  receive(ws, data) {
    let frame;
    try {
      frame = JSON.parse(data);
    } catch {
      return;
    }
    switch (frame.type) {
      case 'subscribed':
        this.retries = 0;
        if (this.lastOffset === null) this.lastOffset = frame.after;
        this.onStatus('live');
        break;
      case 'event': {
        const ev = frame.event;
        // Offsets only grow; one at or below the last is a repeat.
        if (this.lastOffset !== null && ev.offset <= this.lastOffset) return;
        this.lastOffset = ev.offset;
        this.onEvent(ev);
        break;
      }
      case 'error':
        if (frame.code === 'resume_expired') {
          // The entries after our offset are gone: the page reloads what it
          // shows and the feed continues from the newest offset.
          this.lastOffset = frame.offset;
          if (this.onReset) this.onReset(frame.offset);
          ws.send(JSON.stringify({ op: 'subscribe', after: frame.offset, location_ids: this.locationIds.length ? this.locationIds : undefined, account_id: this.accountId || undefined }));
        } else {
          this.onStatus('error', frame);
        }
        break;
      default:
        break;
    }
  }

  async closed(ev) {
    clearInterval(this.pinger);
    this.socket = null;
    if (this.stopped) return;
    if (ev.code === 4001 || ev.code === 4003) {
      this.onStatus('closed', { code: ev.code, message: ev.reason });
      if (ev.code === 4001) this.client.end('unauthorized');
      return;
    }
    if (ev.code === 4010) {
      try {
        await this.client.refresh();
      } catch {
        this.client.end('expired');
        return;
      }
      this.connect();
      return;
    }
    this.retry();
  }

  // retry reconnects after a growing, jittered delay, so a server coming
  // back is not met by every browser at the same instant.
  retry() {
    if (this.stopped) return;
    this.onStatus('reconnecting');
    const base = Math.min(15000, 500 * 2 ** this.retries);
    this.retries++;
    this.timer = setTimeout(() => this.connect(), base / 2 + Math.random() * base / 2);
  }
}
