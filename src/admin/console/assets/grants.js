// Grants: the grants the viewer may see, filtered by state. Break-glass
// grants carry their badge and review state, and an approver of the policy
// (never the owner) records a verdict with Review. Revoking is done from
// Active Sessions (or the CLI).

import { get } from './api.js';
import { h, td, KeyedTable, setText, errorBox, announce, clear } from './dom.js';
import { duration, time, timeAttrs, plural } from './format.js';
import { breakGlassBadge, canReview, openReview } from './lifecycle.js';

export const TITLE = 'Grants';
const LIMIT = 200;

export function mount(root, ctx) {
  const filter = h('select', { id: 'grant-state' },
    h('option', { value: '', text: 'All states' }),
    h('option', { value: 'scheduled', text: 'Scheduled' }),
    h('option', { value: 'active', text: 'Active' }),
    h('option', { value: 'expired', text: 'Expired' }),
    h('option', { value: 'revoked', text: 'Revoked' }));
  const banner = h('div', { class: 'banner' });
  const flash = h('div', { class: 'flash', role: 'status', 'aria-live': 'polite' });
  const summary = h('span', { class: 'summary' });
  const table = new KeyedTable({
    caption: 'Grants',
    className: 'grants',
    empty: 'No grants to show.',
    columns: ['Grant', 'User', 'Target', 'Policy', 'State', 'Granted at', 'Ends', 'Remaining', 'Ended by', 'Comment', 'Break-glass review'],
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
        td('Comment', h('span', { class: 'comment' })),
        td('Break-glass review', h('span', { class: 'glass' }), ' ', h('button', {
          type: 'button', class: 'secondary small review-action', hidden: true,
          on: { click: () => review(tr.grant) },
        }, h('span', { text: 'Review' }), h('span', { class: 'visually-hidden', text: ` ${g.user}'s break-glass access to ${g.target}` }))));
      tr.parts = ['state', 'ends', 'rem', 'by', 'comment', 'glass', 'review-action'].reduce((o, c) => Object.assign(o, { [c]: tr.querySelector('.' + c) }), {});
      return tr;
    },
    update: (tr, g) => {
      const p = tr.parts;
      const live = g.state === 'active' || g.state === 'scheduled';
      setText(p.state, g.state === 'scheduled' ? `scheduled (starts ${time(g.starts_at)})` : live ? g.state : `${g.state}${g.end_reason && g.end_reason !== g.state ? ` (${g.end_reason})` : ''}`);
      p.state.className = `state badge ${g.state}`;
      const end = g.ended_at || g.expires_at;
      p.ends.dateTime = end;
      p.ends.title = end;
      setText(p.ends, time(end));
      setText(p.rem, live ? duration(g.remaining_seconds) : '—');
      setText(p.by, g.ended_by || '—');
      setText(p.comment, g.end_comment || '');
      tr.grant = g;
      tr.dataset.review = g.break_glass ? g.review || 'pending' : '';
      clear(p.glass).append(breakGlassBadge(g) || '—');
      if (g.review_comment) p.glass.append(h('span', { class: 'hint', text: ` “${g.review_comment}”` }));
      p['review-action'].hidden = !canReview(g, ctx.me);
    },
  });

  root.appendChild(h('section', { class: 'page', 'aria-labelledby': 'page-title' },
    h('div', { class: 'page-head' },
      h('h1', { id: 'page-title', tabindex: '-1', text: TITLE }),
      h('p', { class: 'sub', text: `The newest ${LIMIT} grants you may see. Approvers review break-glass grants here; to end a grant, revoke it from Active Sessions or with jitgate revoke.` })),
    banner, flash,
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

  // The requester's reason is on the request, not the grant: read it for
  // the reviewer (a failure only leaves it out).
  async function review(g) {
    let reason = null;
    try {
      reason = (await get(`/v1/requests/${encodeURIComponent(g.request_id)}`)).reason;
    } catch {
      reason = null;
    }
    openReview({
      g,
      reason,
      done(r) {
        const text = `Recorded: ${r.user}'s break-glass access to ${r.target} was ${r.review}.`;
        clear(flash).appendChild(h('p', { class: 'notice ok', text }));
        announce(text);
        ctx.refreshSoon();
      },
      failed: () => ctx.refreshSoon(),
    });
  }

  return { refresh, unmount() {} };
}
