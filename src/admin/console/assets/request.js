// Request access: a form over the targets the viewer may request (GET
// /v1/targets, each with the limits of the policy that would govern it),
// sent as POST /v1/requests. The form checks what it can before sending
// (duration syntax and maximum, a required reason, the policy's
// reason_pattern, a start time within max_schedule_ahead) and shows the
// server's own message for anything it refuses. Break-glass is offered only
// where the policy allows it, with its warning.
//
// Each form field is one entry of `fields` ({node, sync(target), check(),
// put(body)}).

import { get, post, serverNow } from './api.js';
import { h, clear, setText, errorBox, announce } from './dom.js';
import { time, plural, parseDuration, parseLimit, apiDuration, duration as human } from './format.js';
import { reasonProblem, reasonHint, startsAtText, local } from './lifecycle.js';

export const TITLE = 'Request access';

// A field's label, control, hint and inline error, wired for screen readers.
function field(id, label, control, hintText) {
  const hint = h('p', { id: `${id}-hint`, class: 'hint' }, hintText || '');
  const error = h('p', { id: `${id}-error`, class: 'field-error', hidden: true });
  control.id = id;
  control.setAttribute('aria-describedby', `${id}-hint ${id}-error`);
  const labelEl = h('label', { for: id, text: label });
  return {
    node: h('div', { class: 'field' }, labelEl, control, hint, error),
    control,
    hint,
    labelEl,
    fail(text) {
      if (text) {
        setText(error, text);
        error.hidden = false;
        control.setAttribute('aria-invalid', 'true');
      } else {
        setText(error, '');
        error.hidden = true;
        control.removeAttribute('aria-invalid');
      }
      return text || null;
    },
  };
}

const pad = (n) => String(n).padStart(2, '0');

// An instant as a datetime-local value in the viewer's time zone.
function localInput(ms) {
  const d = new Date(ms);
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}T${pad(d.getHours())}:${pad(d.getMinutes())}`;
}

// RFC 3339 UTC, seconds precision, as the API writes its own times.
const rfc3339 = (ms) => new Date(ms).toISOString().replace(/\.\d{3}Z$/, 'Z');

function zone() {
  try {
    return Intl.DateTimeFormat().resolvedOptions().timeZone || 'local';
  } catch {
    return 'local';
  }
}

export function mount(root, ctx) {
  let targets = [];
  let loaded = false;
  const byName = () => targets.find((t) => t.name === select.value) || null;

  const banner = h('div', { class: 'banner' });
  const result = h('div', { id: 'request-result', class: 'request-result', role: 'status', 'aria-live': 'polite' });
  const policyBox = h('dl', { class: 'details policy-limits', id: 'policy-limits' });

  const select = h('select', { name: 'target', required: true });
  const target = field('req-target', 'Target', select, 'Only targets a policy lets you request are listed.');
  target.node.appendChild(policyBox);

  const durInput = h('input', { type: 'text', name: 'duration', autocomplete: 'off', spellcheck: 'false', inputmode: 'text' });
  const dur = field('req-duration', 'Duration', durInput);

  const reasonInput = h('textarea', { name: 'reason', rows: '3', maxlength: '1000' });
  const reason = field('req-reason', 'Reason', reasonInput);

  const startInput = h('input', { type: 'datetime-local', name: 'starts_at', step: '60' });
  const start = field('req-start', 'Start time (optional)', startInput);
  const startPreview = h('p', { id: 'req-start-preview', class: 'start-preview' });
  start.node.appendChild(startPreview);

  const glass = h('input', { type: 'checkbox', id: 'req-break-glass', name: 'break_glass', 'aria-describedby': 'req-break-glass-warning' });
  const glassWarning = h('p', { id: 'req-break-glass-warning', class: 'warning' });
  const glassNode = h('div', { class: 'field break-glass-field', hidden: true },
    h('div', { class: 'check' }, glass, h('label', { for: 'req-break-glass', text: 'Break glass: take access now, without an approver' })),
    glassWarning);
  const submit = h('button', { type: 'submit', class: 'primary', text: 'Request access' });

  const fields = [
    {
      node: target.node,
      sync(t) {
        clear(policyBox);
        if (!t) return;
        const rows = [
          ['Policy', t.policy],
          ['Approval', t.approvals_required ? `${plural(t.approvals_required, 'approval')} needed` : 'granted at once (no approval needed)'],
          ['Default duration', t.default_duration],
          ['Maximum duration', t.max_duration],
          ['Reason', t.require_reason ? 'required' : 'optional'],
        ];
        if (t.idle_timeout) rows.push(['Idle timeout', t.idle_timeout]);
        if (t.max_sessions_per_grant) rows.push(['Sessions per grant', String(t.max_sessions_per_grant)]);
        if (t.max_total && t.max_total !== t.max_duration) rows.push(['Longest with extensions', t.max_total]);
        if (t.max_schedule_ahead) rows.push(['Start time', `now, or up to ${t.max_schedule_ahead} ahead`]);
        if (t.break_glass) rows.push(['Break-glass', 'allowed (reviewed afterwards)']);
        for (const [k, v] of rows) policyBox.append(h('dt', { text: k }), h('dd', { text: v }));
      },
      check: () => target.fail(byName() ? null : 'Choose a target.'),
      put(body) { body.target = select.value; },
    },
    {
      node: dur.node,
      sync(t) {
        if (!t) return;
        const def = parseLimit(t.default_duration);
        durInput.value = def ? apiDuration(def) : t.default_duration;
        setText(dur.hint, `Up to ${t.max_duration} under policy ${t.policy}. Written like 30m, 1h 30m or 2h.`);
        dur.fail(null);
      },
      check() {
        const t = byName();
        const s = parseDuration(durInput.value);
        if (s === null) return dur.fail('Write the duration with s, m, h or d, for example 30m or 1h 30m.');
        if (s <= 0) return dur.fail('The duration must be more than zero.');
        const max = t ? parseLimit(t.max_duration) : null;
        if (max !== null && s > max) return dur.fail(`${human(s)} is more than the maximum of ${t.max_duration} for ${t.name}.`);
        return dur.fail(null);
      },
      put(body) { body.duration = durInput.value.trim(); },
    },
    {
      node: start.node,
      sync(t) {
        if (!t) return;
        const ahead = parseLimit(t.max_schedule_ahead);
        startInput.min = localInput(serverNow());
        startInput.max = ahead === null ? '' : localInput(serverNow() + ahead * 1000);
        start.node.hidden = glass.checked;
        startInput.disabled = glass.checked;
        setText(start.hint, `Leave empty to start as soon as it is granted. In your local time (${zone()}); at most ${t.max_schedule_ahead} ahead under policy ${t.policy}.`);
        showStart();
        start.fail(null);
      },
      check() {
        const t = byName();
        if (glass.checked || !startInput.value) return start.fail(null);
        const at = startAt();
        if (at === null) return start.fail('Choose a date and a time, or leave the start empty.');
        if (at <= serverNow()) return start.fail(`${local(new Date(at).toISOString())} has passed: choose a later time, or leave it empty to start when granted.`);
        const ahead = t ? parseLimit(t.max_schedule_ahead) : null;
        if (ahead !== null && at - serverNow() > ahead * 1000) {
          return start.fail(`That is more than policy ${t.policy}'s max_schedule_ahead of ${t.max_schedule_ahead} away.`);
        }
        return start.fail(null);
      },
      put(body) {
        const at = startAt();
        if (!glass.checked && at !== null) body.starts_at = rfc3339(at);
      },
    },
    {
      node: glassNode,
      sync(t) {
        glassNode.hidden = !(t && t.break_glass);
        if (glassNode.hidden) glass.checked = false;
        else setText(glassWarning, `Only for an emergency. Access starts at once, without waiting for an approver; it is audited and the approvers are notified at once, and an approver of policy ${t.policy} reviews it afterwards as justified or unjustified. A reason is required.`);
        setText(submit, glass.checked ? 'Break glass: get access now' : 'Request access');
        submit.className = glass.checked ? 'danger' : 'primary';
      },
      check: () => null,
      put(body) { if (glass.checked) body.break_glass = true; },
    },
    {
      node: reason.node,
      sync(t) {
        if (!t) return;
        const needed = !!t.require_reason || glass.checked;
        setText(reason.labelEl, needed ? 'Reason (required)' : 'Reason (optional)');
        reasonInput.required = needed;
        clear(reason.hint).append(...reasonHint(t));
        reason.fail(null);
      },
      check: () => reason.fail(reasonProblem(byName(), reasonInput.value.trim(), glass.checked)),
      put(body) { body.reason = reasonInput.value.trim(); },
    },
  ];

  // The datetime-local value as an instant (the browser reads it in the
  // viewer's time zone), or null when empty or incomplete.
  function startAt() {
    if (!startInput.value) return null;
    const at = new Date(startInput.value).getTime();
    return Number.isNaN(at) ? null : at;
  }

  function showStart() {
    const at = startAt();
    setText(startPreview, at === null || glass.checked ? '' : `Access ${startsAtText(rfc3339(at))}.`);
  }
  startInput.addEventListener('input', showStart);
  // Re-label what depends on break-glass (the start, the reason, the
  // button), keeping the duration as typed.
  function resync() {
    const t = byName();
    for (const f of fields) if (f.node !== dur.node) f.sync(t);
  }
  glass.addEventListener('change', resync);

  const form = h('form', { class: 'request-form', novalidate: true, 'aria-labelledby': 'page-title' },
    fields.map((f) => f.node),
    h('div', { class: 'buttons start' }, submit));
  const empty = h('p', { class: 'empty', hidden: true, text: 'No policy lets you request any target. Ask an admin which policy should cover you.' });

  root.appendChild(h('section', { class: 'page', 'aria-labelledby': 'page-title' },
    h('div', { class: 'page-head' },
      h('h1', { id: 'page-title', tabindex: '-1', text: TITLE }),
      h('p', { class: 'sub', text: 'Ask for time-limited access to a target. Your request goes to the approvers of its policy, or is granted at once when the policy needs no approval.' })),
    banner, result, form, empty));

  select.addEventListener('change', () => {
    glass.checked = false;
    const t = byName();
    for (const f of fields) f.sync(t);
  });

  function showResult(r) {
    clear(result);
    const g = r.grant;
    if (r.state === 'approved' && g && g.state === 'scheduled') {
      result.appendChild(h('div', { class: 'notice ok', dataset: { state: 'scheduled' } },
        h('p', { class: 'result-title', text: `Access scheduled: ${r.target} for ${r.duration}, ${startsAtText(g.starts_at)}.` }),
        h('p', {}, `Connections are refused until then. It is listed as scheduled on `, h('a', { href: '#/access', text: 'My access' }), ', where you can also cancel it.')));
      announce(`Access to ${r.target} scheduled.`);
    } else if (r.state === 'approved') {
      const glassy = g && g.break_glass;
      result.appendChild(h('div', { class: `notice ${glassy ? 'warn' : 'ok'}`, dataset: { state: glassy ? 'break-glass' : 'approved' } },
        h('p', { class: 'result-title', text: `${glassy ? 'Break-glass access' : 'Access'} granted: ${r.target} for ${r.duration}${g ? `, until ${time(g.expires_at)}` : ''}.` }),
        glassy ? h('p', { text: `The approvers of policy ${r.policy} have been notified and will review it as justified or unjustified.` }) : null,
        h('p', {}, 'See how to connect, and end it early if you are done, on ', h('a', { href: '#/access', text: 'My access' }), '.')));
      announce(`${glassy ? 'Break-glass access' : 'Access'} to ${r.target} granted.`);
    } else {
      const left = Math.max(0, r.approvals_required - r.approvals.length);
      const when = r.starts_at ? ` Once approved, access ${startsAtText(r.starts_at)}.` : '';
      result.appendChild(h('div', { class: 'notice', dataset: { state: r.state } },
        h('p', { class: 'result-title', text: `Request sent: waiting for ${plural(left, 'approval')} (policy ${r.policy}).` }),
        h('p', {}, 'Request ', h('code', { text: r.id }), ` for ${r.target}, ${r.duration}.${when} It is listed on `, h('a', { href: '#/access', text: 'My access' }), ' until it is decided.')));
      announce(`Request for ${r.target} sent: waiting for ${plural(left, 'approval')}.`);
    }
  }

  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    if (submit.disabled) return;
    clear(result);
    const problems = fields.map((f) => f.check()).filter(Boolean);
    if (problems.length) {
      const bad = form.querySelector('[aria-invalid="true"]');
      if (bad) bad.focus();
      announce(problems.join(' '));
      return;
    }
    const body = {};
    for (const f of fields) f.put(body);
    submit.disabled = true;
    setText(submit, 'Sending…');
    try {
      showResult(await post('/v1/requests', body));
      reasonInput.value = '';
      startInput.value = '';
      glass.checked = false;
      const heading = result.querySelector('.result-title');
      if (heading) {
        heading.tabIndex = -1;
        heading.focus();
      }
    } catch (err) {
      result.appendChild(errorBox(err));
    } finally {
      submit.disabled = false;
      resync();
    }
  });

  async function refresh() {
    // The targets change only with the config: read them once per visit.
    if (loaded) return;
    let data;
    try {
      data = await get('/v1/targets');
    } catch (err) {
      clear(banner).appendChild(errorBox(err));
      return;
    }
    loaded = true;
    clear(banner);
    targets = (data.targets || []).slice().sort((a, b) => a.name.localeCompare(b.name));
    form.hidden = targets.length === 0;
    empty.hidden = targets.length !== 0;
    clear(select);
    for (const t of targets) select.appendChild(h('option', { value: t.name, text: `${t.name} (${t.kind})` }));
    const wanted = new URLSearchParams(location.hash.split('?')[1] || '').get('target');
    if (wanted && targets.some((t) => t.name === wanted)) select.value = wanted;
    const t = byName();
    for (const f of fields) f.sync(t);
  }

  return { refresh, unmount() {} };
}
