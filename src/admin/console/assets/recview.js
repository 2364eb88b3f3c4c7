// What a recording shows, shared by Watch (live) and the player (replay):
// an SSH recording (asciicast v2) in a read-only terminal, a PostgreSQL one
// (one JSON line per statement) as a table that grows.

import { h, td, setText } from './dom.js';
import { time, timeAttrs } from './format.js';
import { terminal, resizeTo } from './term.js';

// Parses one recording line; null when it is not JSON.
export function parseLine(text) {
  try {
    return JSON.parse(text);
  } catch (e) {
    return null;
  }
}

// A view that takes recording lines in order. The first line decides its
// kind: an asciicast header ({"version": 2, ...}) makes a terminal,
// anything else a statement table.
export function recordingView(root, label) {
  let term = null;
  let tbody = null;
  let count = 0;
  const markers = h('ul', { class: 'markers plain' });
  const countNode = h('p', { class: 'sub statements-count' });

  function startTerminal(header) {
    const box = h('div', { class: 'term', id: 'terminal' });
    root.appendChild(box);
    root.appendChild(markers);
    term = terminal(box, header.width, header.height, label);
  }

  function startTable() {
    tbody = h('tbody');
    root.appendChild(countNode);
    root.appendChild(h('div', { class: 'table-wrap' },
      h('table', { class: 'data statements', id: 'statements' },
        h('caption', { class: 'visually-hidden', text: `${label}: statements` }),
        h('thead', {}, h('tr', {}, ['At', 'Statement', 'Duration', 'Rows', 'SQLSTATE'].map((c) => h('th', { scope: 'col', text: c })))),
        tbody)));
  }

  function statement(s) {
    // A marker line (statements the recorder could not record) is shown
    // in their place, as a failure.
    const marker = typeof s.marker === 'string' ? `[jitgate: ${s.marker}]` : null;
    count += 1;
    setText(countNode, `${count} statement${count === 1 ? '' : 's'}`);
    tbody.appendChild(h('tr', { class: s.sqlstate || marker ? 'failed' : '' },
      td('At', h('time', Object.assign(timeAttrs(s.at), { text: time(s.at) }))),
      td('Statement', h('code', { class: 'statement', text: marker ?? String(s.statement ?? '') })),
      td('Duration', s.duration_ms === undefined || s.duration_ms === null ? '—' : `${s.duration_ms} ms`),
      td('Rows', s.rows === undefined || s.rows === null ? '—' : String(s.rows)),
      td('SQLSTATE', s.sqlstate ? h('code', { text: String(s.sqlstate) }) : '—')));
  }

  // One parsed line.
  function feed(v) {
    if (v === null || typeof v !== 'object') return;
    if (!term && !tbody) {
      if (!Array.isArray(v) && v.version === 2) {
        startTerminal(v);
        return;
      }
      startTable();
    }
    if (term && Array.isArray(v)) {
      const [, code, data] = v;
      if (code === 'o') term.write(String(data));
      else if (code === 'r') resizeTo(term, data);
      else if (code === 'm') markers.appendChild(h('li', {}, h('code', { text: String(data) })));
    } else if (tbody && !Array.isArray(v)) {
      statement(v);
    }
  }

  return {
    feed,
    get term() { return term; },
    get kind() { return term ? 'ssh' : tbody ? 'postgres' : null; },
    reset() {
      if (term) term.dispose();
      term = null;
      tbody = null;
      count = 0;
      while (root.firstChild) root.removeChild(root.firstChild);
      while (markers.firstChild) markers.removeChild(markers.firstChild);
    },
  };
}
