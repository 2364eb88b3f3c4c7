// Requests: the pending requests the viewer may decide, with Approve and
// Deny (a reason is required to deny). An extension (more time on a live
// grant) is marked as such, with the grant it extends; a scheduled request
// says when its access would start. Pending requests the viewer can see
// but not decide are listed apart, each saying why, so no button is ever
// shown that the API would refuse.

import { get, post, ApiError } from './api.js';
import { h, td, KeyedTable, setText, errorBox, announce, clear } from './dom.js';
import { openDialog } from './dialog.js';
import { time, timeAttrs, plural } from './format.js';
import { startsAtText } from './lifecycle.js';

// The Target cell: the target, and what kind of ask it is.
function targetCell(r) {
  return td('Target', r.target,
    r.kind === 'extension' ? h('span', { class: 'tag extension' }, ' · extension of grant ', h('code', { text: r.extends_grant })) : null,
    r.starts_at ? h('span', { class: 'tag starts', text: ` · ${startsAtText(r.starts_at)}` }) : null);
}

const durationOf = (r) => (r.kind === 'extension' ? `${r.duration} more` : r.duration);

export const TITLE = 'Requests';

export function mount(root, ctx) {
  const me = ctx.me;
  const approvesSomething = me.approver_of && me.approver_of.length > 0;
  const banner = h('div', { class: 'banner' });
  const flash = h('div', { class: 'flash', role: 'status', 'aria-live': 'polite' });
  const forbidden = h('div', { class: 'forbidden' });
  const summary = h('p', { class: 'summary' });

  const mine = new KeyedTable({
    caption: 'Pending requests you may decide',
    className: 'requests',
    empty: 'No pending requests are waiting for you.',
    columns: ['Requester', 'Target', 'Policy', 'Reason', 'Duration', 'Requested', 'Approvals', h('th', { scope: 'col', text: 'Actions' })],
    key: (r) => r.id,
    create: (r) => {
      const approve = h('button', { type: 'button', class: 'primary small approve', text: 'Approve' });
      const deny = h('button', { type: 'button', class: 'secondary small deny', text: 'Deny' });
      const tr = h('tr', { dataset: { requestId: r.id, kind: r.kind || 'access' } },
        td('Requester', h('strong', { text: r.requester })),
        targetCell(r),
        td('Policy', r.policy),
        td('Reason', h('span', { class: 'reason' })),
        td('Duration', durationOf(r)),
        td('Requested', h('time', Object.assign(timeAttrs(r.created_at), { text: time(r.created_at) }))),
        td('Approvals', h('span', { class: 'approvals' })),
        h('td', { class: 'actions', 'data-label': 'Actions' }, approve, deny));
      tr.parts = { approve, deny, reason: tr.querySelector('.reason'), approvals: tr.querySelector('.approvals') };
      approve.addEventListener('click', () => confirmApprove(tr.req));
      deny.addEventListener('click', () => confirmDeny(tr.req));
      return tr;
    },
    update: (tr, r) => {
      tr.req = r;
      setText(tr.parts.reason, r.reason || '—');
      setText(tr.parts.approvals, `${r.approvals.length} of ${r.approvals_required}`);
    },
  });

  const others = new KeyedTable({
    caption: 'Other pending requests you can see',
    className: 'requests others',
    empty: 'None.',
    columns: ['Requester', 'Target', 'Policy', 'Duration', 'Requested', 'Approvals', 'Why you cannot act'],
    key: (r) => r.id,
    create: (r) => {
      const tr = h('tr', { dataset: { requestId: r.id, kind: r.kind || 'access' } },
        td('Requester', h('strong', { text: r.requester })),
        targetCell(r),
        td('Policy', r.policy),
        td('Duration', durationOf(r)),
        td('Requested', h('time', Object.assign(timeAttrs(r.created_at), { text: time(r.created_at) }))),
        td('Approvals', h('span', { class: 'approvals' })),
        td('Why you cannot act', h('span', { class: 'why' })));
      tr.parts = { approvals: tr.querySelector('.approvals'), why: tr.querySelector('.why') };
      return tr;
    },
    update: (tr, r) => {
      setText(tr.parts.approvals, `${r.approvals.length} of ${r.approvals_required}`);
      setText(tr.parts.why, whyNot(r));
    },
  });
  const othersSection = h('section', { class: 'others', 'aria-labelledby': 'others-title', hidden: true },
    h('h2', { id: 'others-title', text: approvesSomething ? 'Other pending requests you can see' : 'Pending requests you can see' }), others.el);

  root.appendChild(h('section', { class: 'page', 'aria-labelledby': 'page-title' },
    h('div', { class: 'page-head' },
      h('h1', { id: 'page-title', tabindex: '-1', text: TITLE }),
      h('p', { class: 'sub', text: 'Pending requests you may approve or deny. Refreshed every 2 s.' })),
    banner, flash, forbidden, summary, mine.el, othersSection));

  if (!approvesSomething) {
    // The API would answer 403 to any decision by this viewer: say so
    // instead of showing buttons that cannot work.
    forbidden.appendChild(errorBox(new ApiError(403, 'forbidden',
      `${me.user} is not an approver under any policy, so there are no requests here you may approve or deny.`)));
    forbidden.appendChild(h('p', { class: 'hint', text: 'Requests are decided by the approvers of their policy. Your own requests are listed below; the CLI shows them too (jitgate requests).' }));
    mine.el.hidden = true;
  }

  function approvedByMe(r) {
    return r.approvals.some((a) => a.approver === me.user);
  }

  function actionable(r) {
    return r.can_decide === true && !approvedByMe(r);
  }

  function whyNot(r) {
    if (r.requester === me.user) return 'Your own request: another approver must decide it.';
    if (approvedByMe(r)) return `You approved it; it needs ${plural(r.approvals_required - r.approvals.length, 'more approval')} from other approvers.`;
    return `Only approvers of policy ${r.policy} decide it.`;
  }

  async function refresh() {
    let data;
    try {
      data = await get('/v1/requests?state=pending&limit=1000');
    } catch (err) {
      clear(banner).appendChild(errorBox(err));
      return;
    }
    clear(banner);
    const pending = (data.requests || []).filter((r) => r.state === 'pending');
    const act = approvesSomething ? pending.filter(actionable) : [];
    const rest = pending.filter((r) => !act.includes(r));
    mine.sync(act);
    others.sync(rest);
    othersSection.hidden = rest.length === 0;
    if (approvesSomething) setText(summary, `${plural(act.length, 'request')} waiting for you.`);
    ctx.count('requests', act.length);
  }

  function details(r) {
    const d = [
      ['Requester', r.requester],
      ['Target', r.target],
      ['Policy', r.policy],
      ['Duration', durationOf(r)],
      ['Reason', r.reason || '—'],
      ['Requested at', time(r.created_at)],
      ['Approvals so far', `${r.approvals.length} of ${r.approvals_required}`],
      ['Request', h('code', { text: r.id })],
    ];
    if (r.kind === 'extension') d.splice(2, 0, ['Extends grant', h('code', { text: r.extends_grant })]);
    if (r.starts_at) d.splice(4, 0, ['Starts', startsAtText(r.starts_at)]);
    return d;
  }

  function say(text) {
    clear(flash).appendChild(h('p', { class: 'notice ok', text }));
    announce(text);
  }

  function confirmApprove(r) {
    const last = r.approvals.length + 1 >= r.approvals_required;
    const ext = r.kind === 'extension';
    openDialog({
      title: ext ? `Approve ${r.requester}'s extension of grant ${r.extends_grant} on ${r.target}?` : `Approve ${r.requester}'s request for ${r.target}?`,
      warning: last
        ? (ext
          ? `${r.requester}'s access to ${r.target} (grant ${r.extends_grant}) lasts ${r.duration} longer as soon as you approve; their live sessions stay open.`
          : `${r.requester} gets access to ${r.target} for ${r.duration}${r.starts_at ? ` (it ${startsAtText(r.starts_at)})` : ''} as soon as you approve.`)
        : `Your approval is ${r.approvals.length + 1} of the ${r.approvals_required} this policy needs; access starts once another approver agrees.`,
      details: details(r),
      reason: { label: 'Comment (optional; recorded in the audit log)' },
      confirm: 'Approve',
      busy: 'Approving…',
      run: (comment) => post(`/v1/requests/${encodeURIComponent(r.id)}/approve`, { comment }),
      after: (res) => {
        if (res.state === 'approved') {
          const g = res.grant;
          const what = ext ? `extension of grant ${r.extends_grant}` : 'request';
          const until = g ? `: grant ${g.id} is ${g.state} until ${time(g.expires_at)}` : '';
          say(`Approved ${r.requester}'s ${what} for ${r.target}${until}.`);
        } else {
          say(`Approval recorded for ${r.requester}'s request for ${r.target}: ${res.approvals.length} of ${res.approvals_required}.`);
        }
        ctx.refreshSoon();
      },
      failed: () => ctx.refreshSoon(),
    });
  }

  function confirmDeny(r) {
    openDialog({
      title: `Deny ${r.requester}'s request for ${r.target}?`,
      danger: true,
      warning: `Denying closes the request; ${r.requester} sees your reason and must file a new request.`,
      details: details(r),
      reason: { label: 'Reason (required; the requester sees it)', required: true, requiredMessage: 'A reason is required to deny a request.' },
      confirm: 'Deny request',
      busy: 'Denying…',
      run: (reason) => post(`/v1/requests/${encodeURIComponent(r.id)}/deny`, { reason }),
      after: () => {
        say(`Denied ${r.requester}'s request for ${r.target}.`);
        ctx.refreshSoon();
      },
      failed: () => ctx.refreshSoon(),
    });
  }

  return { refresh, unmount() {} };
}
