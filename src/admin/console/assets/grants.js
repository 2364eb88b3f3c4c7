// Grants: a read-only table of the grants the viewer may see, filtered by
// state. Revoking is done from Active Sessions (or the CLI).

import { get } from './api.js';
import { h, td, KeyedTable, setText, errorBox, clear } from './dom.js';
import { duration, time, timeAttrs, plural } from './format.js';

export const TITLE = 'Grants';
const LIMIT = 200;

export function mount(root, ctx) {
  const filter = h('select', { id: 'grant-state' },
    h('option', { value: '', text: 'All states' }),
    h('option', { value: 'active', text: 'Active' }),
    h('option', { value: 'expired', text: 'Expired' }),
    h('option', { value: 'revoked', text: 'Revoked' }));
  const banner = h('div', { class: 'banner' });
  const summary = h('span', { class: 'summary' });
  const table = new KeyedTable({
    caption: 'Grants',
    className: 'grants',
    empty: 'No grants to show.',
    columns: ['Grant', 'User', 'Target', 'Policy', 'State', 'Granted at', 'Ends', 'Remaining', 'Ended by', 'Comment'],
    key: (g) => g.id,
    create: (g) => {
      const tr = h('tr', { dataset: { grantId: g.id } },
        td('Grant', h('code', { text: g.id })),
        td('User', h('strong', { text: g.user })),
        td('Target', g.target),
        td('Policy', g.policy),
        td('State', h('span', { class: 'state' })),
        td('Granted at', h('time', Object.assign(timeAttrs(g.granted_at), { text: time(g.granted_at) }))),
        td('Ends', h('time', { class: 'ends' })),
        td('Remaining', h('span', { class: 'rem' })),
        td('Ended by', h('span', { class: 'by' })),
        td('Comment', h('span', { class: 'comment' })));
      tr.parts = ['state', 'ends', 'rem', 'by', 'comment'].reduce((o, c) => Object.assign(o, { [c]: tr.querySelector('.' + c) }), {});
      return tr;
    },
    update: (tr, g) => {
      const p = tr.parts;
      setText(p.state, g.state === 'active' ? 'active' : `${g.state}${g.end_reason && g.end_reason !== g.state ? ` (${g.end_reason})` : ''}`);
      p.state.className = `state badge ${g.state}`;
      const end = g.ended_at || g.expires_at;
      p.ends.dateTime = end;
      p.ends.title = end;
      setText(p.ends, time(end));
      setText(p.rem, g.state === 'active' ? duration(g.remaining_seconds) : '—');
      setText(p.by, g.ended_by || '—');
      setText(p.comment, g.end_comment || '');
    },
  });

  root.appendChild(h('section', { class: 'page', 'aria-labelledby': 'page-title' },
    h('div', { class: 'page-head' },
      h('h1', { id: 'page-title', tabindex: '-1', text: TITLE }),
      h('p', { class: 'sub', text: `Read-only: the newest ${LIMIT} grants you may see. To end one, revoke it from Active Sessions or with jitgate revoke.` })),
    banner,
    h('div', { class: 'toolbar' }, h('label', { for: 'grant-state', text: 'State' }), filter, summary),
    table.el));

  async function refresh() {
    const q = new URLSearchParams({ limit: String(LIMIT) });
    if (filter.value) q.set('state', filter.value);
    let data;
    try {
      data = await get(`/v1/grants?${q}`);
    } catch (err) {
      clear(banner).appendChild(errorBox(err));
      return;
    }
    clear(banner);
    const list = data.grants || [];
    table.sync(list);
    setText(summary, plural(list.length, 'grant'));
  }
  filter.addEventListener('change', () => ctx.refreshSoon());

  return { refresh, unmount() {} };
}
