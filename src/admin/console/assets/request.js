// Request access: a form over the targets the viewer may request (GET
// /v1/targets, each with the limits of the policy that would govern it),
// sent as POST /v1/requests. The form checks what it can before sending
// (duration syntax and maximum, a required reason, the policy's
// reason_pattern when the API names one) and shows the server's own message
// for anything it refuses.
//
// Each form field is one entry of `fields` ({node, sync(target), check(),
// put(body)}), so later fields (start time, break-glass) are one more entry.

import { get, post } from './api.js';
import { h, clear, setText, errorBox, announce } from './dom.js';
import { time, plural, parseDuration, parseLimit, apiDuration, duration as human } from './format.js';

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

// The policy's reason_pattern as a browser RegExp, or null when the API
// gives none or the browser cannot read it (then only the server checks).
function patternOf(t) {
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
      node: reason.node,
      sync(t) {
        if (!t) return;
        const re = patternOf(t);
        setText(reason.labelEl, t.require_reason ? 'Reason (required)' : 'Reason (optional)');
        reasonInput.required = !!t.require_reason;
        clear(reason.hint).append('Approvers and the audit log see it.');
        if (t.reason_pattern) {
          reason.hint.append(' It must match the pattern ', h('code', { class: 'pattern', text: t.reason_pattern }), ' (for example a ticket id).');
        }
        reason.fail(null);
      },
      check() {
        const t = byName();
        const text = reasonInput.value.trim();
        if (t && t.require_reason && !text) return reason.fail(`Policy ${t.policy} requires a reason.`);
        const re = patternOf(t);
        // The server refuses a reason (even an empty one) that does not match.
        if (re && !re.test(text)) return reason.fail(`The reason must match ${t.reason_pattern}.`);
        return reason.fail(null);
      },
      put(body) { body.reason = reasonInput.value.trim(); },
    },
  ];

  const submit = h('button', { type: 'submit', class: 'primary', text: 'Request access' });
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
    const t = byName();
    for (const f of fields) f.sync(t);
  });

  function showResult(r) {
    clear(result);
    if (r.state === 'approved') {
      const g = r.grant;
      result.appendChild(h('div', { class: 'notice ok', dataset: { state: 'approved' } },
        h('p', { class: 'result-title', text: `Access granted: ${r.target} for ${r.duration}${g ? `, until ${time(g.expires_at)}` : ''}.` }),
        h('p', {}, 'See how to connect, and end it early if you are done, on ', h('a', { href: '#/access', text: 'My access' }), '.')));
      announce(`Access to ${r.target} granted.`);
    } else {
      const left = Math.max(0, r.approvals_required - r.approvals.length);
      result.appendChild(h('div', { class: 'notice', dataset: { state: r.state } },
        h('p', { class: 'result-title', text: `Request sent: waiting for ${plural(left, 'approval')} (policy ${r.policy}).` }),
        h('p', {}, 'Request ', h('code', { text: r.id }), ` for ${r.target}, ${r.duration}. It is listed on `, h('a', { href: '#/access', text: 'My access' }), ' until it is decided.')));
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
      const heading = result.querySelector('.result-title');
      if (heading) {
        heading.tabIndex = -1;
        heading.focus();
      }
    } catch (err) {
      result.appendChild(errorBox(err));
    } finally {
      submit.disabled = false;
      setText(submit, 'Request access');
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
