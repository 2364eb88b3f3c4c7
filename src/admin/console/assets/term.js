// A read-only terminal for SSH output (live and replayed): xterm.js,
// vendored in vendor/ (see vendor/README.md), under the console's strict CSP.
//
// xterm.js styles its DOM renderer at run time in two ways the CSP
// (style-src 'self', no 'unsafe-inline', no nonce) refuses: <style>
// elements whose text depends on the measured cell size and the theme (so no
// hash can name them), and setAttribute of a style attribute for 24-bit
// colours. Both are redirected here to the CSSOM, which the CSP allows
// because only a script already trusted to run can call it: a <style> that
// xterm.js asks for becomes an inert <template> whose text goes into a
// constructed stylesheet adopted by the document, and a style attribute set
// from script becomes style.cssText. Markup can still never carry a style,
// and the CSP stays exactly as strict as before.

import { Terminal } from './vendor/xterm.js';

let patched = false;

// Every colour keeps 4.5:1 against the background (WCAG AA; the default
// palette's blue and red do not), except black on black, which no palette
// can help.
const THEME = {
  background: '#000000',
  foreground: '#e5e5e5',
  cursor: '#e5e5e5',
  black: '#000000',
  red: '#ff6b6b',
  green: '#5fd75f',
  yellow: '#ffd75f',
  blue: '#74a7ff',
  magenta: '#ff87ff',
  cyan: '#5fd7d7',
  white: '#e5e5e5',
  brightBlack: '#9a9a9a',
  brightRed: '#ff8f8f',
  brightGreen: '#87ff87',
  brightYellow: '#ffff87',
  brightBlue: '#9cc2ff',
  brightMagenta: '#ffafff',
  brightCyan: '#87ffff',
  brightWhite: '#ffffff',
};

function patchStyles() {
  if (patched) return;
  patched = true;
  const create = Document.prototype.createElement;
  Document.prototype.createElement = function createElement(tag, options) {
    if (typeof tag !== 'string' || tag.toLowerCase() !== 'style') return create.call(this, tag, options);
    const doc = this;
    const stand = create.call(doc, 'template');
    stand.className = 'xterm-style';
    const sheet = new CSSStyleSheet();
    doc.adoptedStyleSheets = [...doc.adoptedStyleSheets, sheet];
    let text = '';
    Object.defineProperty(stand, 'textContent', {
      get: () => text,
      set: (v) => {
        text = String(v);
        sheet.replaceSync(text);
      },
    });
    const remove = stand.remove.bind(stand);
    stand.remove = () => {
      doc.adoptedStyleSheets = doc.adoptedStyleSheets.filter((s) => s !== sheet);
      remove();
    };
    return stand;
  };
  const setAttr = Element.prototype.setAttribute;
  Element.prototype.setAttribute = function setAttribute(name, value) {
    if (String(name).toLowerCase() === 'style' && this instanceof HTMLElement) {
      this.style.cssText = String(value);
      return;
    }
    setAttr.call(this, name, value);
  };
}

// A terminal that shows output only: no keyboard input reaches anything
// (there is nothing to send it to), the cursor hidden.
export function terminal(container, cols, rows, label) {
  patchStyles();
  const term = new Terminal({
    cols: clamp(cols, 80),
    rows: clamp(rows, 24),
    disableStdin: true,
    cursorBlink: false,
    convertEol: false,
    scrollback: 5000,
    fontFamily: 'ui-monospace, SFMono-Regular, Menlo, Consolas, monospace',
    fontSize: 14,
    screenReaderMode: false,
    theme: THEME,
  });
  term.open(container);
  container.setAttribute('role', 'region');
  container.setAttribute('aria-label', label);
  const ta = container.querySelector('textarea');
  if (ta) {
    // The helper textarea takes keys for input, of which there is none.
    ta.setAttribute('aria-label', `${label} (read-only)`);
    ta.setAttribute('readonly', '');
  }
  return term;
}

// A size of 1 is what the recorder writes for a client that sent none (a
// pty requested without a terminal behind it): show such output at the
// default size instead of one cell.
function clamp(n, dflt) {
  const v = Number(n);
  return Number.isInteger(v) && v > 1 && v <= 1000 ? v : dflt;
}

// "COLSxROWS" from an `r` event.
export function resizeTo(term, spec) {
  const m = /^(\d+)x(\d+)$/.exec(String(spec));
  if (m) term.resize(clamp(m[1], term.cols), clamp(m[2], term.rows));
}

// The terminal's text, one line per row, for tests and copying.
export function screenText(term) {
  const b = term.buffer.active;
  const out = [];
  for (let i = 0; i < b.length; i += 1) {
    const line = b.getLine(i);
    if (line) out.push(line.translateToString(true));
  }
  return out.join('\n').replace(/\n+$/, '');
}
