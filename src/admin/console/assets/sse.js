// Server-Sent Events read through fetch(), because EventSource cannot send
// the Authorization header and the token must never go into a URL.
// parseSse is the incremental parser (per the HTML standard's event-stream
// rules, minus retry/id, which the recording stream does not use); stream()
// drives it from a response body.

import { token, ApiError } from './api.js';

// Feeds text chunks, calls onEvent({event, data}) for each complete event.
// Chunks may split anywhere (inside a line, between \r and \n).
export function parseSse(onEvent) {
  let buf = '';
  let event = '';
  let data = [];
  const line = (l) => {
    if (l === '') {
      if (data.length) onEvent({ event: event || 'message', data: data.join('\n') });
      event = '';
      data = [];
      return;
    }
    if (l.startsWith(':')) return;
    const i = l.indexOf(':');
    const field = i < 0 ? l : l.slice(0, i);
    let value = i < 0 ? '' : l.slice(i + 1);
    if (value.startsWith(' ')) value = value.slice(1);
    if (field === 'event') event = value;
    else if (field === 'data') data.push(value);
  };
  return (chunk) => {
    buf += chunk;
    for (;;) {
      const m = /\r\n|\r|\n/.exec(buf);
      // A lone \r at the end may be the first half of \r\n: wait for more.
      if (!m || (m[0] === '\r' && m.index === buf.length - 1)) break;
      line(buf.slice(0, m.index));
      buf = buf.slice(m.index + m[0].length);
    }
  };
}

// A GET with the bearer token whose body is not JSON; a refusal throws
// ApiError with the API's own message, like api.js.
async function open(path, accept, signal) {
  const headers = { Accept: accept };
  const t = token.get();
  if (t) headers.Authorization = `Bearer ${t}`;
  let resp;
  try {
    resp = await fetch(path, { headers, cache: 'no-store', credentials: 'omit', redirect: 'error', signal });
  } catch (e) {
    if (signal && signal.aborted) return null;
    throw new ApiError(0, 'unreachable', 'the jitgate admin API cannot be reached');
  }
  if (!resp.ok) {
    let code = 'error';
    let message = resp.statusText;
    try {
      const j = await resp.json();
      code = j.error.code;
      message = j.error.message;
    } catch (e) {
      // Not the API's JSON: keep the status text.
    }
    throw new ApiError(resp.status, code, message);
  }
  return resp;
}

// A recording file as text.
export async function getText(path) {
  const resp = await open(path, 'application/x-asciicast, application/x-ndjson, */*');
  return resp.text();
}

// Streams `path`; resolves when the stream closes (or is aborted).
export async function stream(path, onEvent, signal) {
  const resp = await open(path, 'text/event-stream', signal);
  if (!resp) return;
  const feed = parseSse(onEvent);
  const reader = resp.body.getReader();
  const dec = new TextDecoder();
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      feed(dec.decode(value, { stream: true }));
    }
  } catch (e) {
    if (signal && signal.aborted) return;
    throw new ApiError(0, 'unreachable', 'the live stream was cut');
  }
  feed(dec.decode());
}
