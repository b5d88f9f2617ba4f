// The REST API as the console calls it: same origin, the session cookie,
// the CSRF token on every request that changes something, errors as
// {status, code, message, field}; and live views over Server-Sent Events
// that reconnect by themselves when a proxy or the network drops them.

let csrfToken = null;
let onLoggedOut = () => {};

export function setSession(session) { csrfToken = session ? session.csrf_token : null; }
export function whenLoggedOut(callback) { onLoggedOut = callback; }

export class ApiError extends Error {
  constructor(status, body) {
    super(body.message || `HTTP ${status}`);
    this.status = status;
    this.code = body.code;
    this.field = body.field;
  }
}

export async function api(method, path, body) {
  const headers = {accept: 'application/json'};
  if (body !== undefined) headers['content-type'] = 'application/json';
  if (method !== 'GET' && csrfToken) headers['x-csrf-token'] = csrfToken;
  let response;
  try {
    response = await fetch(`/api${path}`, {
      method, headers, credentials: 'same-origin',
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  } catch (err) {
    throw new ApiError(0, {code: 'network', message: 'the control plane cannot be reached; check your connection'});
  }
  if (response.status === 204) return null;
  const data = await response.json().catch(() => null);
  if (!response.ok) {
    const error = new ApiError(response.status, data || {code: `http_${response.status}`, message: response.statusText});
    if (response.status === 401 && !path.startsWith('/auth/session')) onLoggedOut();
    throw error;
  }
  return data;
}

export const get = path => api('GET', path);
export const post = (path, body) => api('POST', path, body);
export const put = (path, body) => api('PUT', path, body);
export const patch = (path, body) => api('PATCH', path, body);
export const del = path => api('DELETE', path);

/**
 * Follows an SSE stream at /api`path`: `onEvent(data)` for each event,
 * `onState('live' | 'reconnecting')` as the connection comes and goes.
 * Reconnects after 1, 2, 4 … 8 s when the stream ends or fails.
 * Answers a function that stops it.
 */
export function follow(path, onEvent, onState = () => {}) {
  let source = null;
  let stopped = false;
  let delay = 1000;
  let timer = null;
  const open = () => {
    if (stopped) return;
    source = new EventSource(`/api${path}`, {withCredentials: true});
    source.onopen = () => { delay = 1000; onState('live'); };
    source.onmessage = event => {
      let data;
      try { data = JSON.parse(event.data); } catch { return; }
      onEvent(data);
    };
    source.onerror = () => {
      source.close();
      if (stopped) return;
      onState('reconnecting');
      timer = setTimeout(open, delay);
      delay = Math.min(delay * 2, 8000);
    };
  };
  open();
  return () => { stopped = true; clearTimeout(timer); if (source) source.close(); };
}
