// DOM building without HTML strings: every text goes in through textContent,
// so data from the API can never become markup (and the CSP's Trusted Types
// rule refuses HTML string sinks anyway).

import { describe } from './api.js';

// h('tr', {class: 'x', dataset: {id}, on: {click: f}}, child, 'text', [more])
export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k === 'class') el.className = v;
    else if (k === 'dataset') Object.assign(el.dataset, v);
    else if (k === 'on') for (const [ev, f] of Object.entries(v)) el.addEventListener(ev, f);
    else if (k === 'text') el.textContent = v;
    else if (k in el && typeof v !== 'string') el[k] = v;
    else el.setAttribute(k, v === true ? '' : String(v));
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const c of children) {
    if (c === undefined || c === null || c === false) continue;
    if (Array.isArray(c)) append(el, c);
    else if (c instanceof Node) el.appendChild(c);
    else el.appendChild(document.createTextNode(String(c)));
  }
}

export function clear(el) {
  while (el.firstChild) el.removeChild(el.firstChild);
  return el;
}

export function setText(el, text) {
  if (el.textContent !== text) el.textContent = text;
}

// A table whose rows are keyed, so a poll updates rows in place: focus,
// checkboxes and open dialogs survive a refresh.
export class KeyedTable {
  constructor({ columns, key, create, update, empty, caption, className }) {
    this.key = key;
    this.create = create;
    this.update = update;
    this.rows = new Map();
    this.empty = h('p', { class: 'empty', text: empty || 'Nothing to show.' });
    this.tbody = h('tbody');
    this.table = h(
      'table',
      { class: 'data ' + (className || '') },
      caption ? h('caption', { class: 'visually-hidden', text: caption }) : null,
      h('thead', {}, h('tr', {}, columns.map((c) =>
        typeof c === 'string' ? h('th', { scope: 'col', text: c }) : c))),
      this.tbody,
    );
    this.el = h('div', { class: 'table-wrap' }, this.table, this.empty);
  }

  // Shows exactly `items`, in order; rows of other keys leave. (A page that
  // wants an ended row to linger keeps it in `items` until it should go.)
  sync(items) {
    const seen = new Set();
    let prev = null;
    for (const item of items) {
      const k = this.key(item);
      seen.add(k);
      let tr = this.rows.get(k);
      if (!tr) {
        tr = this.create(item);
        this.rows.set(k, tr);
      }
      this.update(tr, item);
      const want = prev ? prev.nextSibling : this.tbody.firstChild;
      if (want !== tr) this.tbody.insertBefore(tr, want);
      prev = tr;
    }
    for (const k of [...this.rows.keys()]) {
      if (!seen.has(k)) this.remove(k);
    }
    this.refreshEmpty();
  }

  remove(k) {
    const tr = this.rows.get(k);
    if (tr) tr.remove();
    this.rows.delete(k);
    this.refreshEmpty();
  }

  refreshEmpty() {
    const none = this.rows.size === 0;
    this.table.hidden = none;
    this.empty.hidden = !none;
  }
}

// <td data-label="User"> so phone-width CSS can show the column name.
export function td(label, ...children) {
  return h('td', { 'data-label': label }, ...children);
}

export function announce(text) {
  const el = document.getElementById('announce');
  if (!el) return;
  el.textContent = '';
  // A fresh text node after clearing makes screen readers repeat equal texts.
  setTimeout(() => { el.textContent = text; }, 30);
}

// A readable error: what happened (with the HTTP status), the server's own
// message, and what to do about it. Never a blank page.
export function errorBox(err, extraClass) {
  const d = describe(err);
  return h(
    'div',
    { class: 'notice error ' + (extraClass || ''), role: 'alert', dataset: { status: String(err && err.status !== undefined ? err.status : '') } },
    h('p', { class: 'error-title', text: d.title }),
    d.text ? h('p', { class: 'error-message', text: d.text }) : null,
    d.hint ? h('p', { class: 'hint', text: d.hint }) : null,
  );
}
