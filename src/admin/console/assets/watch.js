// Watch (#/watch?session=ID): a live session as it happens, from its start:
// SSH output in a read-only terminal, PostgreSQL statements as a table that
// grows, with Terminate beside it. The stream is GET /v1/sessions/{id}/live
// (Server-Sent Events) read through fetch with the bearer header; it ends
// with `end` when the session ends, or `dropped` if this tab fell behind.

import { get, post, describe } from './api.js';
import { h, clear, setText, errorBox, announce } from './dom.js';
import { openDialog } from './dialog.js';
import { time } from './format.js';
import { stream } from './sse.js';
import { recordingView, parseLine } from './recview.js';

export const TITLE = 'Watch';

export function sessionFromHash() {
  const q = new URLSearchParams(location.hash.split('?')[1] || '');
  return q.get('session') || '';
}

export function mount(root, ctx) {
  const id = sessionFromHash();
  const ctl = new AbortController();
  let session = null;
  let ended = false;

  const heading = h('h1', { tabindex: '-1', id: 'page-title', text: 'Watch a live session' });
  const details = h('p', { class: 'sub', id: 'watch-details', text: `Session ${id}` });
  const status = h('p', { class: 'watch-status', id: 'watch-status', role: 'status', 'aria-live': 'polite', text: 'Connecting…' });
  const banner = h('div', { class: 'banner' });
  const term = h('button', { type: 'button', class: 'danger', id: 'watch-terminate', text: 'Terminate', disabled: true });
  const back = h('a', { href: '#/sessions', text: 'Back to Active Sessions' });
  const view = h('div', { class: 'recording', id: 'watch-view' });
  root.appendChild(h('section', { class: 'page', 'aria-labelledby': 'page-title' },
    h('div', { class: 'page-head' }, heading, details),
    h('div', { class: 'toolbar' }, term, back),
    status, banner, view));
  const rv = recordingView(view, `Live output of session ${id}`);

  term.addEventListener('click', () => confirmTerminate());

  function finish(text) {
    if (ended) return;
    ended = true;
    term.disabled = true;
    setText(status, text);
    status.classList.add('ended');
    announce(text);
  }

  async function run() {
    if (!id) {
      banner.appendChild(h('p', { class: 'notice error', text: 'No session named: open Watch from Active Sessions.' }));
      return;
    }
    try {
      await stream(`/v1/sessions/${encodeURIComponent(id)}/live`, (ev) => {
        if (ev.event === 'end') {
          finish('The session has ended. What it did is above, and in its recording.');
        } else if (ev.event === 'dropped') {
          finish('The live view fell behind and was dropped; reload to watch again from the start.');
        } else {
          if (!ended && status.textContent !== 'Live') setText(status, 'Live');
          rv.feed(parseLine(ev.data));
        }
      }, ctl.signal);
      if (!ended && !ctl.signal.aborted) finish('The live stream closed.');
    } catch (err) {
      ended = true;
      term.disabled = true;
      setText(status, describe(err).title);
      clear(banner).appendChild(errorBox(err));
    }
  }

  async function refresh() {
    if (ended) return;
    let data;
    try {
      data = await get('/v1/sessions');
    } catch (err) {
      return;
    }
    const s = (data.sessions || []).find((x) => x.id === id);
    if (s) {
      session = s;
      setText(details, `${s.user} on ${s.target} (${s.kind}) from ${s.client_addr}, granted at ${time(s.granted_at)}`);
      term.disabled = false;
    } else {
      term.disabled = true;
    }
  }

  function confirmTerminate() {
    const s = session;
    if (!s || ended) return;
    openDialog({
      title: `Terminate ${s.user}'s session on ${s.target}?`,
      danger: true,
      warning: `This takes effect immediately and cannot be undone: the connection is closed now. The grant stays active, so ${s.user} can reconnect while it lasts; revoke the grant to end access.`,
      details: [['User', s.user], ['Target', `${s.target} (${s.kind})`], ['Client', s.client_addr], ['Session', h('code', { text: s.id })]],
      reason: { label: 'Reason (optional; recorded in the audit log and sent with the farewell)', placeholder: 'e.g. runaway query' },
      confirm: 'Terminate session',
      busy: 'Terminating…',
      run: (reason) => post(`/v1/sessions/${encodeURIComponent(s.id)}/terminate`, { reason }),
      after: () => announce(`Terminated ${s.user}'s session on ${s.target}.`),
    });
  }

  run();
  return {
    refresh,
    unmount() {
      ctl.abort();
      rv.reset();
    },
    view: rv,
  };
}
