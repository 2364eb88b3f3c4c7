// Audit: the newest events of the hash-chained log, read-only, with the
// server's verification of the whole chain (GET /v1/audit/verify). The
// chain is verified when the page opens and on request (it reads the whole
// log); new events are polled cheaply with ?after=SEQ.

import { get } from './api.js';
import { h, td, KeyedTable, setText, errorBox, clear } from './dom.js';
import { time, timeAttrs, detail, plural } from './format.js';

export const TITLE = 'Audit';
const PAGE = 100;
const KEEP = 1000;

export function mount(root, ctx) {
  const verifyBox = h('div', { class: 'verify', 'aria-live': 'polite' });
  const again = h('button', { type: 'button', class: 'secondary', text: 'Verify again' });
  const older = h('button', { type: 'button', class: 'secondary', text: 'Load older events', hidden: true });
  const banner = h('div', { class: 'banner' });
  const summary = h('span', { class: 'summary' });
  const events = new Map(); // seq -> event
  let head = null; // highest seq shown; null until the first load
  let forbidden = false;

  const table = new KeyedTable({
    caption: 'Audit events, newest first',
    className: 'audit',
    empty: 'No events yet.',
    columns: ['Seq', 'Time', 'Actor', 'Action', 'Subject', 'Detail', 'Hash'],
    key: (e) => e.seq,
    create: (e) => h('tr', { dataset: { seq: String(e.seq), action: e.action } },
      td('Seq', String(e.seq)),
      td('Time', h('time', Object.assign(timeAttrs(e.at), { text: time(e.at) }))),
      td('Actor', e.actor),
      td('Action', h('span', { class: 'action', text: e.action })),
      td('Subject', h('code', { text: e.subject })),
      td('Detail', h('span', { class: 'detail', text: detail(e.detail) })),
      td('Hash', h('code', { class: 'hash', title: `${e.hash}\nprevious: ${e.prev_hash}`, text: String(e.hash).slice(0, 12) }))),
    update: () => {},
  });

  const content = h('div', {},
    h('div', { class: 'toolbar' }, again, summary),
    verifyBox, banner, table.el,
    h('div', { class: 'toolbar' }, older));
  root.appendChild(h('section', { class: 'page', 'aria-labelledby': 'page-title' },
    h('div', { class: 'page-head' },
      h('h1', { id: 'page-title', tabindex: '-1', text: TITLE }),
      h('p', { class: 'sub', text: 'Every state change and every session start and end, hash-chained. Read-only; new events appear as they are written.' })),
    content));

  function showForbidden(err) {
    forbidden = true;
    clear(content).appendChild(errorBox(err));
  }

  function render() {
    const list = [...events.values()].sort((a, b) => b.seq - a.seq);
    while (list.length > KEEP) events.delete(list.pop().seq);
    table.sync(list);
    const low = list.length ? list[list.length - 1].seq : 0;
    older.hidden = low <= 1;
    setText(summary, list.length ? `showing ${plural(list.length, 'event')} (seq ${low} to ${list[0].seq})` : '');
  }

  function add(list) {
    for (const e of list) {
      events.set(e.seq, e);
      if (head === null || e.seq > head) head = e.seq;
    }
  }

  async function verify() {
    again.disabled = true;
    clear(verifyBox).appendChild(h('p', { class: 'notice', text: 'Verifying the chain…' }));
    try {
      const v = await get('/v1/audit/verify');
      clear(verifyBox).appendChild(v.ok
        ? h('p', { class: 'notice ok', id: 'chain-status', dataset: { ok: 'true' } },
          h('strong', { text: 'Chain verified. ' }),
          `${plural(v.events, 'event')}; every hash links to the one before it and to the chain head (checked ${time(new Date().toISOString())}).`)
        : h('div', { class: 'notice error', id: 'chain-status', role: 'alert', dataset: { ok: 'false' } },
          h('p', { class: 'error-title', text: `Chain verification FAILED at seq ${v.first_bad_seq}` }),
          h('p', { text: v.problem || 'the chain does not hold' }),
          h('p', { class: 'hint', text: 'The log was altered or truncated after it was written. Keep the store as evidence and find out who could write to it.' })));
      return v;
    } catch (err) {
      if (err.status === 403) showForbidden(err);
      else clear(verifyBox).appendChild(errorBox(err));
      return null;
    } finally {
      again.disabled = false;
    }
  }

  async function load(after, limit) {
    const data = await get(`/v1/audit?after=${after}&limit=${limit}`);
    return data.events || [];
  }

  async function refresh() {
    if (forbidden) return;
    try {
      if (head === null) {
        const v = await verify();
        if (!v || forbidden) return;
        // Sequence numbers run from 1 without gaps, so the newest PAGE
        // events start after events - PAGE.
        add(await load(Math.max(0, v.events - PAGE), PAGE));
        if (head === null) head = 0;
      } else {
        add(await load(head, KEEP));
      }
      clear(banner);
      render();
    } catch (err) {
      if (err.status === 403) showForbidden(err);
      else clear(banner).appendChild(errorBox(err));
    }
  }

  again.addEventListener('click', () => verify());
  older.addEventListener('click', async () => {
    const low = Math.min(...events.keys());
    const from = Math.max(0, low - 1 - PAGE);
    try {
      add(await load(from, Math.min(PAGE, low - 1)));
      render();
      older.focus();
    } catch (err) {
      clear(banner).appendChild(errorBox(err));
    }
  });

  return { refresh, unmount() {} };
}
