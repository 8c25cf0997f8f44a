// The daemon's API (openapi.yaml) as the dashboard uses it: a bearer token from
// sessionStorage (gone when the tab closes; never in localStorage or a cookie, so another
// site cannot ride on it), JSON errors turned into ApiError, and the event stream.

const TOKEN_KEY = 'probefarm.token';

export function token() {
  return sessionStorage.getItem(TOKEN_KEY) || '';
}

export function setToken(value) {
  if (value) sessionStorage.setItem(TOKEN_KEY, value);
  else sessionStorage.removeItem(TOKEN_KEY);
}

export class ApiError extends Error {
  constructor(status, error) {
    super(error.message || `HTTP ${status}`);
    this.status = status;
    this.category = error.category || 'internal';
    this.hint = error.hint || '';
  }
}

// fetch() with the token; resolves to parsed JSON (or the text of a non-JSON body), rejects
// with ApiError carrying the daemon's {category, message, hint}.
export async function api(path, { method = 'GET', body, headers = {}, raw = false } = {}) {
  const init = { method, headers: { Authorization: `Bearer ${token()}`, ...headers } };
  if (body instanceof Blob || body instanceof ArrayBuffer) {
    init.body = body;
    init.headers['Content-Type'] = 'application/octet-stream';
  } else if (body !== undefined) {
    init.body = JSON.stringify(body);
    init.headers['Content-Type'] = 'application/json';
  }
  let res;
  try {
    res = await fetch(path, init);
  } catch (e) {
    throw new ApiError(0, { category: 'network', message: `cannot reach probefarmd: ${e.message}` });
  }
  const type = res.headers.get('Content-Type') || '';
  if (!res.ok) {
    let error = { message: `HTTP ${res.status}` };
    if (type.startsWith('application/json')) {
      const j = await res.json().catch(() => null);
      if (j && j.error) error = j.error;
    }
    throw new ApiError(res.status, error);
  }
  if (raw) return res;
  return type.startsWith('application/json') ? res.json() : res.text();
}

// A WebSocket message's JSON, or null for anything that is not.
export function wsJson(event) {
  try {
    return JSON.parse(event.data);
  } catch {
    return null;
  }
}

export function wsUrl(path, params = {}) {
  const u = new URL(path, location.href);
  u.protocol = location.protocol === 'https:' ? 'wss:' : 'ws:';
  // Browsers cannot set headers on a WebSocket; the daemon takes the token in the query.
  u.searchParams.set('access_token', token());
  for (const [k, v] of Object.entries(params)) u.searchParams.set(k, v);
  return u.toString();
}

// The event stream, reconnecting with backoff. onOpen runs after every (re)connection: the
// caller reloads its lists then, since events sent while disconnected are gone.
export class EventStream {
  constructor({ onEvent, onOpen, onStatus }) {
    Object.assign(this, { onEvent, onOpen, onStatus });
    this.delay = 500;
    this.stopped = false;
  }

  start() {
    this.stopped = false;
    const ws = new WebSocket(wsUrl('/api/v1/events'));
    this.ws = ws;
    this.onStatus('connecting');
    ws.onmessage = (m) => {
      const msg = wsJson(m);
      if (!msg) return;
      if (msg.type === 'hello') {
        this.delay = 500;
        this.onStatus('live');
        this.onOpen();
      } else if (msg.type !== 'subscribed') {
        this.onEvent(msg);
      }
    };
    ws.onclose = () => {
      if (this.ws !== ws || this.stopped) return;
      this.onStatus('disconnected');
      this.timer = setTimeout(() => this.start(), this.delay);
      this.delay = Math.min(this.delay * 2, 10000);
    };
  }

  stop() {
    this.stopped = true;
    clearTimeout(this.timer);
    if (this.ws) this.ws.close();
  }
}
