// The one modal dialog: confirmations for approve, deny, revoke and
// terminate. A native <dialog> opened with showModal(), so the rest of the
// page is inert, Tab stays inside, and Escape closes it (except while the
// action is in flight). Tab cycles inside it. Focus goes to the first field
// on open and back to the button that opened it on close.

import { h, clear, errorBox } from './dom.js';
import { ApiError } from './api.js';

const el = () => document.getElementById('dialog');
let busy = false;
let opener = null;
let ticker = null;

export function isOpen() {
  return el().open;
}

export function closeDialog() {
  const d = el();
  if (d.open) d.close();
}

// spec: {title, warning, danger, details: [[label, value]], fields (nodes
// shown before the reason: a form's own controls), reason: {label,
// required, placeholder, hint}, check(reason) -> null | {message, focus}
// (what the form refuses before sending), confirm, tick, run(reason) ->
// result, after(result, reason), failed(err)}
export function openDialog(spec) {
  const d = el();
  if (d.open) d.close();
  opener = document.activeElement;
  busy = false;

  const reasonId = 'dialog-reason';
  const field = spec.reason
    ? h('textarea', {
      id: reasonId,
      name: 'reason',
      rows: '3',
      maxlength: '1000',
      placeholder: spec.reason.placeholder || '',
      'aria-required': spec.reason.required ? 'true' : null,
      'aria-describedby': spec.reason.hint ? 'dialog-reason-hint' : null,
    })
    : null;
  const errors = h('div', { class: 'dialog-error', role: 'alert', 'aria-live': 'assertive' });
  const cancel = h('button', { type: 'button', class: 'secondary', text: 'Cancel' });
  const ok = h('button', { type: 'submit', class: spec.danger ? 'danger' : 'primary', text: spec.confirm });
  const form = h(
    'form',
    { class: 'dialog-form', novalidate: true },
    h('h2', { id: 'dialog-title', text: spec.title }),
    spec.warning
      ? h('p', { id: 'dialog-warning', class: spec.danger ? 'warning' : 'note' }, spec.warning)
      : h('p', { id: 'dialog-warning', class: 'visually-hidden', text: spec.title }),
    spec.details && spec.details.length
      ? h('dl', { class: 'details' }, spec.details.map(([k, v]) => [h('dt', { text: k }), h('dd', {}, v)]))
      : null,
    spec.fields || null,
    field
      ? h('div', { class: 'field' },
        h('label', { for: reasonId, text: spec.reason.label }),
        field,
        spec.reason.hint ? h('p', { id: 'dialog-reason-hint', class: 'hint' }, spec.reason.hint) : null)
      : null,
    errors,
    h('div', { class: 'buttons' }, cancel, ok),
  );
  clear(d).appendChild(form);

  cancel.addEventListener('click', () => d.close());
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    if (busy) return;
    const reason = field ? field.value.trim() : '';
    clear(errors);
    if (spec.reason && spec.reason.required && !reason) {
      errors.appendChild(h('p', { class: 'error-title', text: spec.reason.requiredMessage || 'A reason is required.' }));
      field.setAttribute('aria-invalid', 'true');
      field.focus();
      return;
    }
    const refused = spec.check ? spec.check(reason) : null;
    if (refused) {
      errors.appendChild(h('p', { class: 'error-title', text: refused.message }));
      const bad = refused.focus || field;
      if (bad) {
        bad.setAttribute('aria-invalid', 'true');
        bad.focus();
      }
      return;
    }
    for (const x of form.querySelectorAll('[aria-invalid]')) x.removeAttribute('aria-invalid');
    busy = true;
    ok.disabled = true;
    cancel.disabled = true;
    d.setAttribute('aria-busy', 'true');
    const label = ok.textContent;
    ok.textContent = spec.busy || 'Working…';
    try {
      const result = await spec.run(reason);
      busy = false;
      if (result && result.keepOpen) {
        // Partial outcome (bulk revoke): show it; the person closes.
        errors.appendChild(result.node);
        ok.hidden = true;
        cancel.disabled = false;
        cancel.textContent = 'Close';
        cancel.focus();
      } else {
        d.close();
      }
      if (spec.after) spec.after(result, reason);
    } catch (err) {
      busy = false;
      errors.appendChild(errorBox(err));
      cancel.disabled = false;
      ok.disabled = false;
      ok.textContent = label;
      // Retrying cannot help when the answer is final: offer Close only.
      if (err instanceof ApiError && [401, 403, 404, 409].includes(err.status)) {
        ok.hidden = true;
        cancel.textContent = 'Close';
        cancel.focus();
      } else {
        ok.focus();
      }
      if (spec.failed) spec.failed(err);
    } finally {
      d.removeAttribute('aria-busy');
    }
  });

  // Tab and Shift+Tab cycle inside the dialog. A native modal already
  // makes the page inert, but Chromium lets Tab leave for the browser's own
  // UI after the last control; a person using the keyboard should not have
  // to find their way back.
  d.onkeydown = (ev) => {
    if (ev.key !== 'Tab') return;
    const stops = [...d.querySelectorAll('a[href], button, input, select, textarea, [tabindex]:not([tabindex="-1"])')]
      .filter((x) => !x.disabled && !x.hidden && x.getClientRects().length > 0);
    if (!stops.length) return;
    const first = stops[0];
    const last = stops[stops.length - 1];
    if (ev.shiftKey && (document.activeElement === first || !d.contains(document.activeElement))) {
      ev.preventDefault();
      last.focus();
    } else if (!ev.shiftKey && (document.activeElement === last || !d.contains(document.activeElement))) {
      ev.preventDefault();
      first.focus();
    }
  };
  d.oncancel = (ev) => {
    if (busy) ev.preventDefault();
  };
  d.onclose = () => {
    if (ticker) clearInterval(ticker);
    ticker = null;
    const back = opener;
    opener = null;
    if (back && back.isConnected && !back.disabled) back.focus();
    else {
      const main = document.getElementById('main');
      if (main) main.focus();
    }
  };
  if (spec.tick) {
    spec.tick();
    ticker = setInterval(spec.tick, 250);
  }
  d.showModal();
  (form.querySelector('input, select') || field || cancel).focus();
}
