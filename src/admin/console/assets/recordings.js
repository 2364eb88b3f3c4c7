// Recordings: the recordings you may see (GET /v1/recordings: admins and
// approvers of each session's policy), filterable by user and target, and a
// player: an SSH recording replays into a terminal with its timing (play,
// pause, 1x/2x/8x, progress), a PostgreSQL one shows as its statements.

import { get } from './api.js';
import { getText } from './sse.js';
import { h, td, KeyedTable, setText, errorBox, clear, announce } from './dom.js';
import { time, timeAttrs } from './format.js';
import { recordingView, parseLine } from './recview.js';
import { player } from './player.js';

export const TITLE = 'Recordings';

export function mount(root, ctx) {
  let fetchedAt = null;
  let current = null;
  const user = h('input', { type: 'text', id: 'rec-user', name: 'user', autocomplete: 'off' });
  const target = h('input', { type: 'text', id: 'rec-target', name: 'target', autocomplete: 'off' });
  const apply = h('button', { type: 'submit', class: 'secondary', text: 'Filter' });
  const filters = h('form', { class: 'filters', id: 'rec-filters' },
    h('label', { for: 'rec-user', text: 'User' }), user,
    h('label', { for: 'rec-target', text: 'Target' }), target, apply);
  const banner = h('div', { class: 'banner' });
  const summary = h('p', { class: 'summary' });
  const stage = h('section', { class: 'player', id: 'player', 'aria-labelledby': 'player-title', hidden: true });
  const table = new KeyedTable({
    caption: 'Recordings',
    className: 'recordings',
    empty: 'No recordings you may see.',
    columns: ['User', 'Target', 'Kind', 'Started', 'Ended', 'Bytes', 'SHA-256', 'Instance', h('th', { scope: 'col', text: 'Actions' })],
    key: (r) => r.id,
    create: (r) => {
      const play = h('button', { type: 'button', class: 'secondary small play', text: r.kind === 'postgres' ? 'Show' : 'Play' });
      play.setAttribute('aria-label', `${r.kind === 'postgres' ? 'Show' : 'Play'} ${r.user}'s session on ${r.target} started ${time(r.started_at)}`);
      play.addEventListener('click', () => open(r));
      const tr = h('tr', { dataset: { sessionId: r.id } },
        td('User', h('strong', { text: r.user })),
        td('Target', r.target),
        td('Kind', h('span', { class: 'kind', text: r.kind })),
        td('Started', h('time', Object.assign(timeAttrs(r.started_at), { text: time(r.started_at) }))),
        td('Ended', h('span', { class: 'ended-at' })),
        td('Bytes', h('span', { class: 'bytes' })),
        td('SHA-256', h('code', { class: 'sha' })),
        td('Instance', r.instance),
        h('td', { class: 'actions', 'data-label': 'Actions' }, play));
      return tr;
    },
    update: (tr, r) => {
      setText(tr.querySelector('.ended-at'), r.ended_at ? time(r.ended_at) : 'live');
      setText(tr.querySelector('.bytes'), r.bytes === null || r.bytes === undefined ? '—' : String(r.bytes));
      const sha = tr.querySelector('.sha');
      setText(sha, r.sha256 ? `${r.sha256.slice(0, 12)}…` : '—');
      sha.title = r.sha256 || '';
    },
  });
  root.appendChild(h('section', { class: 'page', 'aria-labelledby': 'page-title' },
    h('div', { class: 'page-head' }, h('h1', { tabindex: '-1', id: 'page-title', text: TITLE }),
      h('p', { class: 'sub', text: 'Sessions recorded on this instance, sealed by the audit log. Every replay is audited.' })),
    filters, banner, summary, table.el, stage));

  filters.addEventListener('submit', (ev) => {
    ev.preventDefault();
    refresh();
  });

  async function refresh() {
    const q = new URLSearchParams();
    if (user.value.trim()) q.set('user', user.value.trim());
    if (target.value.trim()) q.set('target', target.value.trim());
    let data;
    try {
      data = await get(`/v1/recordings${q.toString() ? `?${q}` : ''}`);
    } catch (err) {
      clear(banner).appendChild(errorBox(err));
      return;
    }
    clear(banner);
    fetchedAt = new Date().toISOString();
    const rows = data.recordings || [];
    table.sync(rows);
    setText(summary, `${rows.length} recording${rows.length === 1 ? '' : 's'} · updated ${time(fetchedAt)}`);
  }

  async function open(r) {
    if (current) current.stop();
    clear(stage).hidden = false;
    const title = h('h2', { id: 'player-title', tabindex: '-1', text: `${r.user} on ${r.target}, ${time(r.started_at)}` });
    const status = h('p', { class: 'sub', id: 'player-status', role: 'status', 'aria-live': 'polite', text: 'Loading…' });
    const controls = h('div', { class: 'toolbar player-controls' });
    const view = h('div', { class: 'recording', id: 'player-view' });
    stage.append(title, status, controls, view);
    title.focus();
    let text;
    try {
      text = await getText(`/v1/sessions/${encodeURIComponent(r.id)}/recording`);
    } catch (err) {
      setText(status, 'Could not load the recording.');
      stage.appendChild(errorBox(err));
      return;
    }
    const lines = text.split('\n').filter((l) => l.trim()).map(parseLine).filter((v) => v !== null);
    const rv = recordingView(view, `Recording of ${r.user}'s session on ${r.target}`);
    if (r.kind === 'ssh' && lines.length && lines[0] && lines[0].version === 2) {
      rv.feed(lines[0]);
      current = player(controls, status, rv, lines.slice(1));
      current.play();
    } else {
      for (const v of lines) rv.feed(v);
      setText(status, `${lines.length} statement${lines.length === 1 ? '' : 's'}.`);
      current = { stop: () => rv.reset() };
    }
    announce(`Opened the recording of ${r.user}'s session on ${r.target}.`);
  }

  return {
    refresh,
    unmount() {
      if (current) current.stop();
    },
  };
}
