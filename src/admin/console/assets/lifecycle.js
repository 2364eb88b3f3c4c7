// The grant lifecycle in the console, shared by Request access, My access
// and Grants: local times for scheduled starts, the break-glass badge and
// its review state, the Extend dialog (an extension request under the
// grant's policy) and the Review dialog (an approver's verdict on a
// break-glass grant). Everything the form checks here the server checks
// again; the checks only let a person see what is wrong before sending.

import { post, serverNow } from './api.js';
import { h } from './dom.js';
import { openDialog } from './dialog.js';
import { time, plural, parseDuration, parseLimit, apiDuration, duration as human } from './format.js';

// A policy's reason_pattern as a browser RegExp, or null when the API
// gives none or the browser cannot read it (then only the server checks).
export function patternOf(t) {
  if (!t || typeof t.reason_pattern !== 'string' || !t.reason_pattern) return null;
  for (const flags of ['u', '']) {
    try {
      return new RegExp(t.reason_pattern, flags);
    } catch {
      // try without the unicode flag, then give up
    }
  }
  return null;
}

// What a reason must satisfy under `t` (a GET /v1/targets row): an error
// sentence, or null. `required` adds a need the policy alone does not say
// (break-glass always needs a reason).
export function reasonProblem(t, text, required) {
  if (!text && (required || (t && t.require_reason))) {
    return t ? `Policy ${t.policy} requires a reason.` : 'A reason is required.';
  }
  const re = patternOf(t);
  // The server refuses a reason (even an empty one) that does not match.
  if (re && !re.test(text)) return `The reason must match ${t.reason_pattern}.`;
  return null;
}

// The reason hint: who sees it, and the pattern when the policy sets one.
export function reasonHint(t) {
  const parts = ['Approvers and the audit log see it.'];
  if (t && t.reason_pattern) {
    parts.push(' It must match the pattern ', h('code', { class: 'pattern', text: t.reason_pattern }), ' (for example a ticket id).');
  }
  return parts;
}

// An instant in the viewer's own time zone, e.g. "Sat, Dec 5, 10:30 AM".
export function local(iso) {
  const t = new Date(iso);
  if (Number.isNaN(t.getTime())) return iso || '—';
  return t.toLocaleString(undefined, { weekday: 'short', month: 'short', day: 'numeric', hour: '2-digit', minute: '2-digit' });
}

// "starts at Sat, Dec 5, 10:30 AM (your local time; 09:30Z)".
export function startsAtText(iso) {
  return `starts at ${local(iso)} (your local time; ${time(iso)})`;
}

// When a grant's access starts: its starts_at when scheduled, else approval.
export const startOf = (g) => g.starts_at || g.granted_at;

// Milliseconds until a scheduled grant starts (0 once started).
export function untilStart(g) {
  if (g.state !== 'scheduled' || !g.starts_at) return 0;
  return Math.max(0, Date.parse(g.starts_at) - serverNow());
}

// The distinct break-glass badge with the grant's review state, or null
// for an ordinary grant.
export function breakGlassBadge(g) {
  if (!g.break_glass) return null;
  const review = g.review || 'pending';
  const said = review === 'pending'
    ? 'review pending'
    : `reviewed: ${review}${g.reviewed_by ? ` by ${g.reviewed_by}` : ''}`;
  return h('span', { class: 'break-glass-tag', dataset: { review } },
    h('span', { class: 'badge break-glass', text: 'Break-glass' }), ' ',
    h('span', { class: `review ${review}`, text: said }));
}

// May `me` record a verdict on `g`? An approver of its policy, never its
// owner, once per grant (the API says 403 / 409 otherwise).
export function canReview(g, me) {
  return !!(g.break_glass && g.review === 'pending' && g.user !== me.user
    && me.approver_of && me.approver_of.includes(g.policy));
}

// Seconds more `g` may be extended by under `t`'s max_total (null when
// unknown: the server still says).
export function room(g, t) {
  const max = t ? parseLimit(t.max_total) : null;
  if (max === null) return null;
  const used = (Date.parse(g.expires_at) - Date.parse(startOf(g))) / 1000;
  return Math.max(0, Math.floor(max - used));
}

// The Extend dialog for the viewer's own active grant `g`. `t` is its
// target's row from GET /v1/targets (the policy's limits), `left` a node
// kept showing the time remaining, `done(result)` runs after the API
// answered (approved at once, or pending approval).
export function openExtend({ g, t, tick, left, done, failed }) {
  const policy = t && t.policy === g.policy ? t : null;
  const more = policy ? room(g, policy) : null;
  const def = policy ? parseLimit(policy.default_duration) : null;
  const start = def === null ? 1800 : def;
  const durInput = h('input', {
    id: 'extend-duration',
    type: 'text',
    name: 'duration',
    autocomplete: 'off',
    spellcheck: 'false',
    value: apiDuration(more === null ? start : Math.min(start, more)),
    'aria-describedby': 'extend-duration-hint',
  });
  const roomText = more === null
    ? ''
    : ` At most ${human(more)} more: policy ${policy.policy} lets a grant last ${policy.max_total} in all.`;
  const approvals = policy ? policy.approvals_required : null;
  const details = [
    ['Target', g.target],
    ['Grant', h('code', { text: g.id })],
    ['Ends at', `${time(g.expires_at)} (${local(g.expires_at)} your local time)`],
    ['Time remaining', left],
  ];
  if (more !== null) details.push(['Room under max_total', h('span', { class: 'room', text: `${human(more)} more (at most ${policy.max_total} in all)` })]);
  openDialog({
    title: `Extend your access to ${g.target}?`,
    warning: approvals === 0
      ? 'More time is granted at once (policy needs no approval). Your live sessions stay open; they end at the new time.'
      : `Your extension goes to the approvers of policy ${g.policy}${approvals ? ` (${plural(approvals, 'approval')} needed)` : ''}. Until then your access ends as before; your live sessions stay open.`,
    details,
    fields: h('div', { class: 'field' },
      h('label', { for: 'extend-duration', text: 'More time' }),
      durInput,
      h('p', { id: 'extend-duration-hint', class: 'hint', text: `Written like 15m or 1h 30m.${roomText}` })),
    reason: {
      label: policy && policy.require_reason ? 'Reason (required)' : 'Reason (optional)',
      hint: reasonHint(policy),
    },
    check(reason) {
      const s = parseDuration(durInput.value);
      if (s === null) return { message: 'Write the duration with s, m, h or d, for example 30m or 1h 30m.', focus: durInput };
      if (s <= 0) return { message: 'The duration must be more than zero.', focus: durInput };
      if (more !== null && s > more) {
        return { message: `${human(s)} is more than the ${human(more)} left under policy ${policy.policy}'s max_total of ${policy.max_total}.`, focus: durInput };
      }
      const bad = reasonProblem(policy, reason, false);
      return bad ? { message: bad } : null;
    },
    tick,
    confirm: approvals === 0 ? 'Extend now' : 'Ask for more time',
    busy: 'Sending…',
    run: (reason) => post(`/v1/grants/${encodeURIComponent(g.id)}/extend`, { duration: durInput.value.trim(), reason }),
    after: done,
    failed,
  });
}

// The Review dialog for a break-glass grant: justified or unjustified,
// with a comment (required for unjustified: the owner and the audit log
// need to know why).
export function openReview({ g, reason, done, failed }) {
  const radio = (value, label) => h('label', { class: 'choice' },
    h('input', { type: 'radio', name: 'verdict', value, id: `verdict-${value}` }), ` ${label}`);
  const group = h('fieldset', { class: 'verdict' },
    h('legend', { text: 'Verdict' }),
    radio('justified', 'Justified: the emergency called for it'),
    radio('unjustified', 'Unjustified: it should have waited for an approver'));
  const chosen = () => {
    const x = group.querySelector('input:checked');
    return x ? x.value : null;
  };
  openDialog({
    title: `Review ${g.user}'s break-glass access to ${g.target}`,
    warning: `${g.user} took this access at once, without an approver. Record whether it was justified; the verdict is audited and notified, once per grant. It does not end the grant (revoke it for that).`,
    details: [
      ['User', g.user],
      ['Target', g.target],
      ['Policy', g.policy],
      ['Their reason', reason || '—'],
      ['Granted at', time(g.granted_at)],
      ['State', g.state],
      ['Grant', h('code', { text: g.id })],
    ],
    fields: group,
    reason: { label: 'Comment (required when unjustified; recorded in the audit log)' },
    check(comment) {
      const v = chosen();
      if (!v) return { message: 'Choose justified or unjustified.', focus: group.querySelector('input') };
      if (v === 'unjustified' && !comment) return { message: 'Say why it was unjustified.' };
      return null;
    },
    confirm: 'Record verdict',
    busy: 'Recording…',
    run: (comment) => post(`/v1/grants/${encodeURIComponent(g.id)}/review`, { verdict: chosen(), comment }),
    after: done,
    failed,
  });
}
