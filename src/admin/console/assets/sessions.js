// Active Sessions: one row per live session with a countdown that runs
// locally between polls, idle time, status, Revoke (the grant) and
// Terminate (this session), and multi-select for a bulk revoke. A session
// that ends stays LINGER_MS with its reason before its row leaves.

import { get, post, serverNow } from './api.js';
import { h, td, KeyedTable, setText, errorBox, announce, clear } from './dom.js';
import { openDialog } from './dialog.js';
import { duration, time, timeAttrs, plural } from './format.js';

export const TITLE = 'Active Sessions';
const LINGER_MS = 8000;
const SOON_S = 60;
const IDLE_S = 60;
const FRAME_MS = 100;

export function mount(root, ctx) {
  // id -> {s, deadline (performance.now() ms), total (s), ended, reason}
  const entries = new Map();
  const selected = new Set();
  const grantLookups = new Map();
  const timers = new Set();
  let raf = 0;
  let lastFrame = 0;
  let fetchedAt = null;

  const heading = h('h1', { tabindex: '-1', text: TITLE });
  const sub = h('p', { class: 'sub', text: 'Live connections under a grant. Refreshed every 2 s; time remaining counts down in between.' });
  const banner = h('div', { class: 'banner' });
  const flash = h('div', { class: 'flash', role: 'status', 'aria-live': 'polite' });
  const summary = h('span', { class: 'summary' });
  const bulk = h('button', { type: 'button', class: 'danger', id: 'bulk-revoke', disabled: true, text: 'Revoke selected grants' });
  const all = h('input', { type: 'checkbox', id: 'select-all', 'aria-label': 'Select all live sessions' });
  const table = new KeyedTable({
    caption: 'Active sessions',
    className: 'sessions',
    empty: 'No live sessions you can oversee.',
    columns: [h('th', { scope: 'col', class: 'sel' }, all), 'User', 'Target', 'Kind', 'Client', 'Granted at', 'Time remaining', 'Idle', 'Status', h('th', { scope: 'col', text: 'Actions' })],
    key: (e) => e.s.id,
    create: createRow,
    update: updateRow,
  });
  root.appendChild(h('section', { class: 'page', 'aria-labelledby': 'page-title' },
    h('div', { class: 'page-head' }, Object.assign(heading, { id: 'page-title' }), sub),
    banner,
    flash,
    h('div', { class: 'toolbar' }, bulk, summary),
    table.el));

  all.addEventListener('change', () => {
    for (const [id, e] of entries) {
      if (e.ended) continue;
      if (all.checked) selected.add(id);
      else selected.delete(id);
    }
    render();
  });
  bulk.addEventListener('click', () => confirmBulk());

  function createRow(e) {
    const s = e.s;
    const cb = h('input', { type: 'checkbox', class: 'select', 'aria-label': `Select ${s.user}'s session on ${s.target}` });
    cb.addEventListener('change', () => {
      if (cb.checked) selected.add(s.id);
      else selected.delete(s.id);
      render();
    });
    const bar = h('progress', { class: 'remaining', max: 1, value: 1, 'aria-label': `Time remaining for ${s.user} on ${s.target}` });
    const left = h('span', { class: 'left' });
    const idle = h('span', { class: 'idle' });
    const status = h('span', { class: 'status' });
    const revoke = h('button', { type: 'button', class: 'danger small revoke', text: 'Revoke grant' });
    const term = h('button', { type: 'button', class: 'secondary small terminate', text: 'Terminate' });
    // Watch: for those who oversee sessions (the API still decides, by the
    // session's policy); TCP tunnels are not recorded.
    const watch = mayWatch(s) ? h('a', { class: 'button secondary small watch', href: `#/watch?session=${encodeURIComponent(s.id)}`, text: 'Watch' }) : null;
    revoke.addEventListener('click', () => confirmRevoke(s.id));
    term.addEventListener('click', () => confirmTerminate(s.id));
    const tr = h('tr', { dataset: { sessionId: s.id, grantId: s.grant_id } },
      h('td', { class: 'sel' }, cb),
      td('User', h('strong', { text: s.user })),
      td('Target', s.target),
      td('Kind', h('span', { class: 'kind', text: s.kind })),
      td('Client', h('code', { text: s.client_addr })),
      td('Granted at', h('time', Object.assign(timeAttrs(s.granted_at), { text: time(s.granted_at) }))),
      td('Time remaining', h('div', { class: 'countdown' }, bar, left)),
      td('Idle', idle),
      td('Status', status),
      h('td', { class: 'actions', 'data-label': 'Actions' }, watch, revoke, term));
    tr.parts = { cb, bar, left, idle, status, revoke, term };
    return tr;
  }

  function mayWatch(s) {
    const me = ctx.me || {};
    return (s.kind === 'ssh' || s.kind === 'postgres') && !!(me.admin || (me.approver_of && me.approver_of.length));
  }

  function updateRow(tr, e) {
    const p = tr.parts;
    p.cb.checked = selected.has(e.s.id);
    p.cb.disabled = e.ended;
    p.revoke.disabled = e.ended;
    p.term.disabled = e.ended;
    p.revoke.hidden = e.ended;
    p.term.hidden = e.ended;
    tr.classList.toggle('ended', e.ended);
    p.bar.max = Math.max(1, e.total);
    paint(tr, e, performance.now());
  }

  // The per-frame part: countdown, idle time, status.
  function paint(tr, e, now) {
    const p = tr.parts;
    const left = e.ended ? 0 : Math.max(0, (e.deadline - now) / 1000);
    p.bar.value = left;
    p.bar.classList.toggle('low', left < SOON_S);
    setText(p.left, e.ended ? '—' : duration(Math.ceil(left)));
    const idleS = Math.max(0, (serverNow() - Date.parse(e.s.last_activity_at)) / 1000);
    setText(p.idle, e.ended ? '—' : duration(idleS));
    let st;
    let cls;
    if (e.ended) [st, cls] = [`Ended: ${e.reason}`, 'ended'];
    else if (left <= 0) [st, cls] = ['Expiring now', 'soon'];
    else if (left < SOON_S) [st, cls] = ['Expires soon', 'soon'];
    else if (idleS >= IDLE_S) [st, cls] = ['Idle', 'idle'];
    else [st, cls] = ['Active', 'active'];
    setText(p.status, st);
    if (p.status.dataset.state !== cls) {
      p.status.className = `status ${cls}`;
      p.status.dataset.state = cls;
    }
  }

  function frame(t) {
    raf = requestAnimationFrame(frame);
    if (t - lastFrame < FRAME_MS) return;
    lastFrame = t;
    const now = performance.now();
    for (const [id, e] of entries) {
      const tr = table.rows.get(id);
      if (tr) paint(tr, e, now);
    }
  }
  raf = requestAnimationFrame(frame);

  function render() {
    const items = [...entries.values()];
    table.sync(items);
    for (const id of [...selected]) {
      const e = entries.get(id);
      if (!e || e.ended) selected.delete(id);
    }
    const liveCount = items.filter((e) => !e.ended).length;
    const grantsSel = new Set([...selected].map((id) => entries.get(id).s.grant_id));
    bulk.disabled = selected.size === 0;
    setText(bulk, selected.size
      ? `Revoke selected grants (${grantsSel.size})`
      : 'Revoke selected grants');
    all.checked = liveCount > 0 && selected.size === liveCount;
    all.indeterminate = selected.size > 0 && selected.size < liveCount;
    all.disabled = liveCount === 0;
    setText(summary, `${plural(liveCount, 'live session')}${fetchedAt ? ` · updated ${time(fetchedAt)}` : ''}`);
    ctx.count('sessions', liveCount);
  }

  function endedReasonFromGrant(g, s) {
    if (!g || g.state === 'active') return 'session closed (client or upstream closed it, idle timeout, or terminated); the grant is still active';
    let r = `grant ${g.end_reason || g.state}`;
    if (g.ended_by && g.end_reason !== 'expired') r += ` by ${g.ended_by}`;
    if (g.end_comment) r += ` (${g.end_comment})`;
    return r || `ended (${s.target})`;
  }

  function lookupGrant(id) {
    if (!grantLookups.has(id)) {
      grantLookups.set(id, get(`/v1/grants/${encodeURIComponent(id)}`).catch(() => null));
    }
    return grantLookups.get(id);
  }

  // Marks a session ended, shows why, and removes its row after LINGER_MS.
  function markEnded(id, reason) {
    const e = entries.get(id);
    if (!e || e.ended) return;
    e.ended = true;
    e.reason = reason || 'ended';
    selected.delete(id);
    const finish = (why) => {
      e.reason = why;
      const tr = table.rows.get(id);
      if (tr) updateRow(tr, e);
      announce(`${e.s.user}'s session on ${e.s.target} ended: ${why}`);
    };
    if (reason) finish(reason);
    else lookupGrant(e.s.grant_id).then((g) => finish(endedReasonFromGrant(g, e.s)));
    const t = setTimeout(() => {
      timers.delete(t);
      entries.delete(id);
      table.remove(id);
      render();
    }, LINGER_MS);
    timers.add(t);
  }

  async function refresh() {
    let data;
    try {
      data = await get('/v1/sessions');
    } catch (err) {
      clear(banner).appendChild(errorBox(err));
      if (fetchedAt) banner.appendChild(h('p', { class: 'hint', text: `Showing what was live at ${time(fetchedAt)}.` }));
      return;
    }
    clear(banner);
    fetchedAt = new Date(serverNow()).toISOString();
    const now = performance.now();
    const seen = new Set();
    for (const s of data.sessions || []) {
      seen.add(s.id);
      const fresh = now + s.remaining_seconds * 1000;
      const total = Math.max(1, (Date.parse(s.expires_at) - Date.parse(s.granted_at)) / 1000);
      const e = entries.get(s.id);
      if (!e) {
        entries.set(s.id, { s, deadline: fresh, total, ended: false, reason: '' });
      } else if (!e.ended) {
        e.s = s;
        e.total = total;
        // remaining_seconds is rounded up: keep the smooth local countdown
        // unless the server disagrees by more than the rounding.
        e.deadline = Math.abs(fresh - e.deadline) > 1500 ? fresh : Math.min(e.deadline, fresh);
      }
    }
    for (const [id, e] of entries) {
      if (!seen.has(id) && !e.ended) markEnded(id, null);
    }
    render();
  }

  function liveUnder(grantId) {
    return [...entries.values()].filter((e) => !e.ended && e.s.grant_id === grantId);
  }

  function remainingNode(id) {
    const out = h('span', { class: 'left' });
    const tick = () => {
      const e = entries.get(id);
      const left = e && !e.ended ? Math.max(0, (e.deadline - performance.now()) / 1000) : 0;
      setText(out, e && e.ended ? `already ended: ${e.reason}` : duration(Math.ceil(left)));
    };
    return [out, tick];
  }

  function sessionDetails(e, leftNode) {
    const s = e.s;
    return [
      ['User', s.user],
      ['Target', `${s.target} (${s.kind})`],
      ['Client', s.client_addr],
      ['Session', h('code', { text: s.id })],
      ['Grant', h('code', { text: s.grant_id })],
      ['Granted at', time(s.granted_at)],
      ['Time remaining', leftNode],
    ];
  }

  function say(text) {
    clear(flash).appendChild(h('p', { class: 'notice ok', text }));
    announce(text);
  }

  function confirmRevoke(id) {
    const e = entries.get(id);
    if (!e || e.ended) return;
    const s = e.s;
    const n = liveUnder(s.grant_id).length;
    const [leftNode, tick] = remainingNode(id);
    openDialog({
      title: `Revoke ${s.user}'s grant for ${s.target}?`,
      danger: true,
      warning: `This takes effect immediately and cannot be undone. The grant ends now and its ${plural(n, 'live session')} ${n === 1 ? 'is' : 'are'} closed at once; ${s.user} must request access again.`,
      details: [...sessionDetails(e, leftNode), ['Live sessions under this grant', String(n)]],
      tick,
      reason: { label: 'Reason (optional; recorded in the audit log and sent with the farewell)', placeholder: 'e.g. INC-42 closed' },
      confirm: 'Revoke grant',
      busy: 'Revoking…',
      run: (reason) => post(`/v1/grants/${encodeURIComponent(s.grant_id)}/revoke`, { reason }),
      after: (r, reason) => {
        const why = `grant revoked by ${ctx.me.user}${inParens(reason)}`;
        for (const x of liveUnder(s.grant_id)) markEnded(x.s.id, why);
        say(`Revoked ${s.user}'s grant for ${s.target}: ${plural(r.sessions_terminated, 'session')} closed.`);
        ctx.refreshSoon();
      },
      failed: () => ctx.refreshSoon(),
    });
  }

  function confirmTerminate(id) {
    const e = entries.get(id);
    if (!e || e.ended) return;
    const s = e.s;
    const [leftNode, tick] = remainingNode(id);
    openDialog({
      title: `Terminate ${s.user}'s session on ${s.target}?`,
      danger: true,
      warning: `This takes effect immediately and cannot be undone: the connection is closed now. The grant stays active, so ${s.user} can reconnect while it lasts; revoke the grant to end access.`,
      details: sessionDetails(e, leftNode),
      tick,
      reason: { label: 'Reason (optional; recorded in the audit log and sent with the farewell)', placeholder: 'e.g. runaway query' },
      confirm: 'Terminate session',
      busy: 'Terminating…',
      run: (reason) => post(`/v1/sessions/${encodeURIComponent(s.id)}/terminate`, { reason }),
      after: (_r, reason) => {
        markEnded(s.id, `terminated by ${ctx.me.user}${inParens(reason)}`);
        say(`Terminated ${s.user}'s session on ${s.target}.`);
        ctx.refreshSoon();
      },
      failed: () => ctx.refreshSoon(),
    });
  }

  const inParens = (reason) => (reason ? ` (${reason})` : '');

  function confirmBulk() {
    const byGrant = new Map();
    for (const id of selected) {
      const e = entries.get(id);
      if (!e || e.ended) continue;
      const list = byGrant.get(e.s.grant_id) || [];
      list.push(e);
      byGrant.set(e.s.grant_id, list);
    }
    if (!byGrant.size) return;
    const sessionsCount = [...byGrant.values()].reduce((a, l) => a + liveUnder(l[0].s.grant_id).length, 0);
    const items = [...byGrant.entries()].map(([gid, list]) => {
      const s = list[0].s;
      return h('li', {}, h('strong', { text: s.user }), ` → ${s.target} `, h('code', { text: gid }), ` (${plural(liveUnder(gid).length, 'live session')})`);
    });
    openDialog({
      title: `Revoke ${plural(byGrant.size, 'grant')}?`,
      danger: true,
      warning: `This takes effect immediately and cannot be undone. Each grant ends now and its sessions (${sessionsCount} in all) are closed at once; their owners must request access again.`,
      details: [['Grants', h('ul', { class: 'plain' }, items)]],
      reason: { label: 'Reason for all of them (optional; recorded in the audit log)', placeholder: 'e.g. incident over' },
      confirm: `Revoke ${plural(byGrant.size, 'grant')}`,
      busy: 'Revoking…',
      run: async (reason) => {
        const results = [];
        for (const [gid, list] of byGrant) {
          try {
            const r = await post(`/v1/grants/${encodeURIComponent(gid)}/revoke`, { reason });
            results.push({ gid, list, ok: true, n: r.sessions_terminated });
          } catch (err) {
            results.push({ gid, list, ok: false, err });
          }
        }
        const why = `grant revoked by ${ctx.me.user}${inParens(reason)}`;
        for (const r of results.filter((x) => x.ok)) {
          for (const x of liveUnder(r.gid)) markEnded(x.s.id, why);
        }
        const failed = results.filter((x) => !x.ok);
        const closed = results.filter((x) => x.ok).reduce((a, x) => a + x.n, 0);
        const okCount = results.length - failed.length;
        say(`Revoked ${plural(okCount, 'grant')}: ${plural(closed, 'session')} closed.${failed.length ? ` ${failed.length} failed.` : ''}`);
        if (!failed.length) return { closed };
        return {
          keepOpen: true,
          node: h('div', {}, h('p', { class: 'error-title', text: `${plural(okCount, 'grant')} revoked; ${failed.length} could not be:` }),
            failed.map((f) => h('div', {}, h('p', {}, h('code', { text: f.gid }), ` (${f.list[0].s.user} → ${f.list[0].s.target})`), errorBox(f.err)))),
        };
      },
      after: () => ctx.refreshSoon(),
    });
  }

  return {
    refresh,
    unmount() {
      cancelAnimationFrame(raf);
      for (const t of timers) clearTimeout(t);
    },
  };
}
