// My access: the viewer's own active grants counting down (as on Active
// Sessions: from the server's remaining_seconds, locally between polls) and
// scheduled ones counting down to their start, the exact command that
// connects to each target with a Copy button, Extend (an extension request:
// approved at once or pending approval; the countdown moves to the new end
// in place), End my access now (the irreversible-warning dialog, an
// optional reason), the break-glass badge with its review state, the
// viewer's pending requests and extensions (each may be withdrawn), and the
// grants that ended recently.

import { get, post } from './api.js';
import { h, td, KeyedTable, setText, errorBox, announce, clear } from './dom.js';
import { openDialog } from './dialog.js';
import { duration, time, timeAttrs, plural } from './format.js';
import { breakGlassBadge, openExtend, startOf, startsAtText, untilStart, local } from './lifecycle.js';

export const TITLE = 'My access';
const SOON_S = 60;
const FRAME_MS = 100;
const ENDED_SHOWN = 10;

// The proxy address to give a client: the listener's own, unless it is
// bound to every interface, then the host this console was reached at.
function reachable(addr) {
  if (!addr) return null;
  const m = /^(.*):(\d+)$/.exec(addr);
  if (!m) return addr;
  const host = m[1].replace(/^\[|\]$/g, '');
  if (host === '0.0.0.0' || host === '::') {
    const here = location.hostname.includes(':') ? `[${location.hostname}]` : location.hostname;
    return `${here}:${m[2]}`;
  }
  return addr;
}

// A local port for `jitgate connect --listen`: stable per target, so the
// command is the same every time; any free port works.
function localPort(name) {
  let x = 0;
  for (const c of name) x = (x * 31 + c.charCodeAt(0)) % 10000;
  return 20000 + x;
}

// The one command that connects to `target` (SPEC "Command line").
export function connectCommand(target, kind, me) {
  if (kind === 'ssh') return `jitgate ssh ${target}`;
  if (kind === 'postgres') return `jitgate psql ${target}`;
  const proxy = reachable(me.tcp_address) || 'PROXY:PORT';
  return `jitgate connect ${target} --proxy ${proxy} --listen 127.0.0.1:${localPort(target)}`;
}

export function mount(root, ctx) {
  const me = ctx.me;
  const kinds = new Map(); // target -> kind, from GET /v1/targets
  const limits = new Map(); // target -> its GET /v1/targets row (the policy's limits)
  const live = new Map(); // grant id -> live session count
  // grant id -> {deadline, start (performance.now() ms; start 0 once
  // started), total (s)}
  const clocks = new Map();
  let raf = 0;
  let lastFrame = 0;

  const banner = h('div', { class: 'banner' });
  const flash = h('div', { class: 'flash', role: 'status', 'aria-live': 'polite' });

  const active = new KeyedTable({
    caption: 'Your active and scheduled grants',
    className: 'access',
    empty: 'You have no active access. Ask for it on Request access.',
    columns: ['Target', 'Granted at', 'Time remaining', 'Live sessions', 'How to connect', h('th', { scope: 'col', text: 'Actions' })],
    key: (g) => g.id,
    create(g) {
      const bar = h('progress', { class: 'remaining', max: 1, value: 1, 'aria-label': `Time remaining on ${g.target}` });
      const left = h('span', { class: 'left' });
      const status = h('span', { class: 'status active', text: 'Active' });
      const sessions = h('span', { class: 'live-count' });
      const cmd = h('code', { class: 'command' });
      // The visible word starts the accessible name, which also names the target.
      const copyWord = h('span', { text: 'Copy' });
      const copy = h('button', { type: 'button', class: 'secondary small copy' },
        copyWord, h('span', { class: 'visually-hidden', text: ` the command for ${g.target}` }));
      const endWord = h('span', { text: 'End my access now' });
      const end = h('button', { type: 'button', class: 'danger small end' }, endWord);
      const extend = h('button', { type: 'button', class: 'secondary small extend' },
        h('span', { text: 'Extend' }), h('span', { class: 'visually-hidden', text: ` your access to ${g.target}` }));
      const badge = h('span', { class: 'badges' });
      const starts = h('p', { class: 'starts hint' });
      copy.addEventListener('click', () => copyCommand(tr));
      end.addEventListener('click', () => confirmEnd(tr.grant));
      extend.addEventListener('click', () => confirmExtend(tr));
      const tr = h('tr', { dataset: { grantId: g.id, target: g.target } },
        td('Target', h('strong', { text: g.target }), ' ', badge),
        td('Granted at', h('time', Object.assign(timeAttrs(g.granted_at), { text: time(g.granted_at) }))),
        td('Time remaining', h('div', { class: 'countdown' }, bar, left), ' ', status, starts),
        td('Live sessions', sessions),
        td('How to connect', h('div', { class: 'connect' }, cmd, copy)),
        h('td', { class: 'actions', 'data-label': 'Actions' }, extend, ' ', end));
      tr.parts = { bar, left, status, sessions, cmd, copy: copyWord, end, endWord, extend, badge, starts };
      return tr;
    },
    update(tr, g) {
      tr.grant = g;
      const p = tr.parts;
      setText(p.cmd, connectCommand(g.target, kinds.get(g.target), me));
      setText(p.sessions, String(live.get(g.id) || 0));
      const c = clocks.get(g.id);
      p.bar.max = c ? c.total : 1;
      const scheduled = g.state === 'scheduled';
      tr.dataset.state = g.state;
      // A scheduled grant cannot be extended yet (409): no button for it.
      p.extend.hidden = scheduled;
      setText(p.endWord, scheduled ? 'Cancel this scheduled access' : 'End my access now');
      setText(p.starts, scheduled ? `Access ${startsAtText(g.starts_at)}.` : '');
      p.starts.hidden = !scheduled;
      clear(p.badge).append(breakGlassBadge(g) || '');
      paint(tr, performance.now());
    },
  });

  const pending = new KeyedTable({
    caption: 'Your pending requests',
    className: 'access-pending',
    empty: 'No pending requests.',
    columns: ['Target', 'Duration', 'Reason', 'Requested', 'Approvals', 'Expires', h('th', { scope: 'col', text: 'Actions' })],
    key: (r) => r.id,
    create: (r) => {
      const withdraw = h('button', { type: 'button', class: 'secondary small withdraw', text: 'Withdraw' });
      withdraw.addEventListener('click', () => confirmWithdraw(r));
      const ext = r.kind === 'extension';
      const tr = h('tr', { dataset: { requestId: r.id, kind: r.kind || 'access' } },
        td('Target', h('strong', { text: r.target }),
          ext ? h('span', { class: 'tag extension' }, ' · extension of grant ', h('code', { text: r.extends_grant })) : null,
          r.starts_at ? h('span', { class: 'tag starts', text: ` · ${startsAtText(r.starts_at)}` }) : null),
        td('Duration', ext ? `${r.duration} more` : r.duration),
        td('Reason', r.reason || '—'),
        td('Requested', h('time', Object.assign(timeAttrs(r.created_at), { text: time(r.created_at) }))),
        td('Approvals', h('span', { class: 'approvals' })),
        td('Expires', h('time', Object.assign(timeAttrs(r.expires_at), { text: time(r.expires_at) }))),
        h('td', { class: 'actions', 'data-label': 'Actions' }, withdraw));
      tr.parts = { approvals: tr.querySelector('.approvals') };
      return tr;
    },
    update: (tr, r) => setText(tr.parts.approvals, `${r.approvals.length} of ${r.approvals_required}`),
  });

  const ended = new KeyedTable({
    caption: 'Your grants that ended recently',
    className: 'access-ended',
    empty: 'None.',
    columns: ['Target', 'State', 'Ended at', 'Ended by', 'Comment'],
    key: (g) => g.id,
    create: (g) => {
      const tr = h('tr', { dataset: { grantId: g.id } },
        td('Target', h('strong', { text: g.target }), ' ', h('span', { class: 'badges' })),
        td('State', h('span', { class: 'state badge' })),
        td('Ended at', h('time', Object.assign(timeAttrs(g.ended_at || g.expires_at), { text: time(g.ended_at || g.expires_at) }))),
        td('Ended by', g.ended_by || '—'),
        td('Comment', g.end_comment || ''));
      tr.parts = { state: tr.querySelector('.state'), badge: tr.querySelector('.badges') };
      return tr;
    },
    update: (tr, g) => {
      setText(tr.parts.state, g.state);
      tr.parts.state.className = `state badge ${g.state}`;
      clear(tr.parts.badge).append(breakGlassBadge(g) || '');
    },
  });

  // What `jitgate connect` needs besides the command line.
  const tcpHint = h('p', { class: 'hint tcp-hint', hidden: true },
    h('code', { text: 'jitgate connect' }), ' reads the grant\'s connect secret from ', h('code', { text: 'JITGATE_SECRET' }),
    ' (print one with ', h('code', { text: 'jitgate secret GRANT_ID' }), ') and checks the proxy\'s certificate with ',
    h('code', { text: '--fingerprint' }), ' or ', h('code', { text: '--ca' }), ' (', h('code', { text: 'jitgate whoami' }), ' shows them).');

  const pendingSection = h('section', { class: 'pending', 'aria-labelledby': 'pending-title' },
    h('h2', { id: 'pending-title', text: 'Pending requests' }), pending.el);
  const endedSection = h('section', { class: 'ended', 'aria-labelledby': 'ended-title' },
    h('h2', { id: 'ended-title', text: 'Ended recently' }), ended.el);

  root.appendChild(h('section', { class: 'page', 'aria-labelledby': 'page-title' },
    h('div', { class: 'page-head' },
      h('h1', { id: 'page-title', tabindex: '-1', text: TITLE }),
      h('p', { class: 'sub' }, 'Your access, counting down. Refreshed every 2 s. Need more? ', h('a', { href: '#/request', text: 'Request access' }), '.')),
    banner, flash,
    h('h2', { id: 'active-title', class: 'first', text: 'Active and scheduled' }),
    active.el, tcpHint, pendingSection, endedSection));
  active.table.setAttribute('aria-labelledby', 'active-title');

  function paint(tr, now) {
    const c = clocks.get(tr.grant.id);
    const p = tr.parts;
    p.bar.hidden = !!(c && c.start > now);
    if (c && c.start > now) {
      // Scheduled: no bar yet; the text counts down to the start.
      setText(p.left, `starts in ${duration(Math.ceil((c.start - now) / 1000))}`);
      setText(p.status, 'Scheduled');
      p.status.className = 'status scheduled';
      return;
    }
    const left = c ? Math.max(0, (c.deadline - now) / 1000) : 0;
    p.bar.value = left;
    p.bar.classList.toggle('low', left < SOON_S);
    setText(p.left, duration(Math.ceil(left)));
    const soon = left < SOON_S;
    setText(p.status, left <= 0 ? 'Expiring now' : soon ? 'Expires soon' : 'Active');
    p.status.className = `status ${soon ? 'soon' : 'active'}`;
  }

  function frame(t) {
    raf = requestAnimationFrame(frame);
    if (t - lastFrame < FRAME_MS) return;
    lastFrame = t;
    const now = performance.now();
    for (const tr of active.rows.values()) paint(tr, now);
  }
  raf = requestAnimationFrame(frame);

  async function copyCommand(tr) {
    const text = tr.parts.cmd.textContent;
    let ok = false;
    try {
      await navigator.clipboard.writeText(text);
      ok = true;
    } catch {
      // No clipboard permission (or not a secure context): select the text
      // so Ctrl+C copies it.
      const range = document.createRange();
      range.selectNodeContents(tr.parts.cmd);
      const sel = getSelection();
      sel.removeAllRanges();
      sel.addRange(range);
    }
    setText(tr.parts.copy, ok ? 'Copied' : 'Selected');
    announce(ok ? `Copied: ${text}` : 'The command is selected: press Ctrl+C to copy it.');
    setTimeout(() => setText(tr.parts.copy, 'Copy'), 2000);
  }

  async function refresh() {
    let grants;
    let requests;
    let sessions;
    try {
      if (!kinds.size) {
        const t = await get('/v1/targets');
        for (const x of t.targets || []) {
          kinds.set(x.name, x.kind);
          limits.set(x.name, x);
        }
      }
      const u = encodeURIComponent(me.user);
      [grants, requests, sessions] = await Promise.all([
        get(`/v1/grants?user=${u}&limit=100`),
        get('/v1/requests?state=pending&limit=1000'),
        get(`/v1/sessions?user=${u}`),
      ]);
    } catch (err) {
      clear(banner).appendChild(errorBox(err));
      return;
    }
    clear(banner);
    const mine = (grants.grants || []).filter((g) => g.user === me.user);
    const now = performance.now();
    live.clear();
    for (const s of sessions.sessions || []) {
      if (s.user === me.user) live.set(s.grant_id, (live.get(s.grant_id) || 0) + 1);
    }
    const act = mine.filter((g) => g.state === 'active' || g.state === 'scheduled');
    for (const g of act) setClock(g, now);
    for (const id of [...clocks.keys()]) if (!act.some((g) => g.id === id)) clocks.delete(id);
    active.sync(act);
    tcpHint.hidden = !act.some((g) => (kinds.get(g.target) || 'tcp') === 'tcp');
    pending.sync((requests.requests || []).filter((r) => r.requester === me.user && r.state === 'pending'));
    ended.sync(mine.filter((g) => g.state !== 'active' && g.state !== 'scheduled')
      .sort((a, b) => Date.parse(b.ended_at || b.expires_at) - Date.parse(a.ended_at || a.expires_at))
      .slice(0, ENDED_SHOWN));
    ctx.count('access', act.length);
  }

  // The grant's countdowns from its server fields: to its end, and for a
  // scheduled grant to its start too.
  function setClock(g, now) {
    const fresh = now + g.remaining_seconds * 1000;
    const total = Math.max(1, (Date.parse(g.expires_at) - Date.parse(startOf(g))) / 1000);
    const c = clocks.get(g.id);
    // remaining_seconds is rounded up: keep the smooth local countdown
    // unless the server disagrees by more than the rounding (an extension
    // moves it by far more).
    const deadline = !c || Math.abs(fresh - c.deadline) > 1500 ? fresh : Math.min(c.deadline, fresh);
    const wait = untilStart(g);
    clocks.set(g.id, { deadline, total, start: wait > 0 ? now + wait : 0 });
  }

  function say(text) {
    clear(flash).appendChild(h('p', { class: 'notice ok', text }));
    announce(text);
  }

  function confirmEnd(g) {
    const left = h('span', { class: 'left' });
    const tick = () => {
      const c = clocks.get(g.id);
      setText(left, c ? duration(Math.ceil(Math.max(0, (c.deadline - performance.now()) / 1000))) : 'already ended');
    };
    const n = live.get(g.id) || 0;
    const scheduled = g.state === 'scheduled';
    openDialog({
      title: scheduled ? `Cancel your scheduled access to ${g.target}?` : `End your access to ${g.target} now?`,
      danger: true,
      warning: scheduled
        ? `This takes effect immediately and cannot be undone. The grant (it ${startsAtText(g.starts_at)}) is revoked before it starts; to get access then you must request it again.`
        : `This takes effect immediately and cannot be undone. Your grant ends now and its ${plural(n, 'live session')} ${n === 1 ? 'is' : 'are'} closed at once; to connect again you must request access again.`,
      details: [
        ['Target', g.target],
        ['Grant', h('code', { text: g.id })],
        scheduled ? ['Starts at', local(g.starts_at)] : ['Granted at', time(g.granted_at)],
        ['Time remaining', left],
        ['Live sessions', String(n)],
      ],
      tick,
      reason: { label: 'Reason (optional; recorded in the audit log)', placeholder: 'e.g. fix deployed' },
      confirm: scheduled ? 'Cancel scheduled access' : 'End my access now',
      busy: 'Ending…',
      run: (reason) => post(`/v1/grants/${encodeURIComponent(g.id)}/revoke`, { reason }),
      after: (r) => {
        say(`Ended your access to ${g.target}: ${plural(r.sessions_terminated, 'session')} closed.`);
        ctx.refreshSoon();
      },
      failed: () => ctx.refreshSoon(),
    });
  }

  // Extend: approved at once moves the countdown to the new end right
  // here (the polls agree from then on); pending waits for an approver and
  // is listed with the pending requests meanwhile.
  function confirmExtend(tr) {
    const g = tr.grant;
    const left = h('span', { class: 'left' });
    const tick = () => {
      const c = clocks.get(g.id);
      setText(left, c ? duration(Math.ceil(Math.max(0, (c.deadline - performance.now()) / 1000))) : 'already ended');
    };
    openExtend({
      g,
      t: limits.get(g.target),
      left,
      tick,
      done(r) {
        if (r.state === 'approved' && r.grant) {
          setClock(r.grant, performance.now());
          const row = active.rows.get(r.grant.id);
          if (row) active.update(row, r.grant);
          say(`Extended your access to ${g.target} by ${r.duration}: it now ends at ${time(r.grant.expires_at)} (${local(r.grant.expires_at)} your local time).`);
        } else {
          const n = Math.max(0, r.approvals_required - r.approvals.length);
          say(`Asked for ${r.duration} more on ${g.target}: waiting for ${plural(n, 'approval')} (request ${r.id}). Until then your access ends as before.`);
        }
        ctx.refreshSoon();
      },
      failed: () => ctx.refreshSoon(),
    });
  }

  function confirmWithdraw(r) {
    openDialog({
      title: r.kind === 'extension' ? `Withdraw your extension request for ${r.target}?` : `Withdraw your request for ${r.target}?`,
      warning: 'The request is closed and its approvers no longer see it. To get access later, request again.',
      details: [
        ['Target', r.target],
        ['Duration', r.duration],
        ['Reason', r.reason || '—'],
        ['Approvals so far', `${r.approvals.length} of ${r.approvals_required}`],
        ['Request', h('code', { text: r.id })],
      ],
      confirm: 'Withdraw request',
      busy: 'Withdrawing…',
      run: () => post(`/v1/requests/${encodeURIComponent(r.id)}/cancel`, {}),
      after: () => {
        say(`Withdrew your request for ${r.target}.`);
        ctx.refreshSoon();
      },
      failed: () => ctx.refreshSoon(),
    });
  }

  return {
    refresh,
    unmount() {
      cancelAnimationFrame(raf);
    },
  };
}
