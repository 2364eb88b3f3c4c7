// The JSON API with the bearer token, and errors turned into sentences.
//
// The token lives only in this tab's sessionStorage: it survives a reload,
// dies with the tab, is never put in a cookie or a URL, and is sent only as
// the Authorization header of same-origin fetches.

const KEY = 'jitgate.token';

export const token = {
  get: () => sessionStorage.getItem(KEY),
  set: (t) => sessionStorage.setItem(KEY, t),
  clear: () => sessionStorage.removeItem(KEY),
};

export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status; // 0 when the API could not be reached at all
    this.code = code;
  }
}

// Called on any 401, so a token that stops working (reload, rotation)
// returns the tab to the sign-in page with a message instead of failing.
let onUnauthorized = () => {};
export function setUnauthorizedHandler(f) {
  onUnauthorized = f;
}

// Server time minus this browser's, from the Date header, so idle times and
// "ago" do not depend on the browser's clock being right.
let skewMs = 0;
export const serverNow = () => Date.now() + skewMs;

const TIMEOUT_MS = 15000;

export async function call(method, path, body, bearer) {
  const t = bearer || token.get();
  const headers = { Accept: 'application/json' };
  if (t) headers.Authorization = `Bearer ${t}`;
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  const ctl = new AbortController();
  const timer = setTimeout(() => ctl.abort(), TIMEOUT_MS);
  let resp;
  try {
    resp = await fetch(path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      cache: 'no-store',
      // Cookies never carry the API's credentials; the one exception is the
      // exchange of a sign-in code, bound to this browser by an HttpOnly
      // cookie the callback set (Path=/auth/exchange, docs/identity.md).
      credentials: path === '/auth/exchange' ? 'same-origin' : 'omit',
      redirect: 'error',
      signal: ctl.signal,
    });
  } catch (e) {
    throw new ApiError(0, 'unreachable', ctl.signal.aborted
      ? 'the jitgate admin API did not answer within 15 s'
      : 'the jitgate admin API cannot be reached');
  } finally {
    clearTimeout(timer);
  }
  const date = Date.parse(resp.headers.get('Date') || '');
  if (!Number.isNaN(date)) skewMs = date + 500 - Date.now();
  let data = null;
  const text = await resp.text();
  try {
    data = text ? JSON.parse(text) : null;
  } catch {
    data = null;
  }
  if (resp.ok) return data;
  const e = (data && data.error) || {};
  const err = new ApiError(resp.status, e.code || 'http_' + resp.status, e.message || resp.statusText);
  if (resp.status === 401 && !bearer) onUnauthorized(err);
  throw err;
}

export const get = (path) => call('GET', path);
export const post = (path, body) => call('POST', path, body || {});

const TITLES = {
  0: 'Cannot reach jitgate',
  400: 'Not accepted (400 Bad Request)',
  401: 'Not signed in (401 Unauthorized)',
  403: 'Not allowed (403 Forbidden)',
  404: 'Not found (404)',
  409: 'Already changed (409 Conflict)',
  413: 'Too large (413)',
  503: 'Temporarily unavailable (503)',
};

// What to tell a person about an error: a title and a sentence of advice.
export function describe(err) {
  if (!(err instanceof ApiError)) {
    return { title: 'Something went wrong in the console', text: String(err && err.message || err), hint: 'Reload the page; if it persists, use the jitgate CLI.' };
  }
  const title = TITLES[err.status] || `Error (${err.status})`;
  const hints = {
    0: 'Check that the daemon is running; the console keeps retrying.',
    401: 'Sign in again with a valid API token.',
    403: 'Your token does not carry the right for this; an approver of the policy or an admin can do it.',
    404: 'It may have been removed, or it is not visible to you.',
    409: 'Someone or something changed it first; the list has been refreshed.',
    503: 'The daemon cannot reach its store and refuses changes until it can (fail closed).',
  };
  return { title, text: err.message, hint: hints[err.status] || '' };
}
