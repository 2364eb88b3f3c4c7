// The console shell: sign-in state, hash routing between the pages, and
// the poll loop that keeps the visible page current. Each page is one
// module exporting TITLE and mount(root, ctx) -> {refresh, unmount}; its
// nav link is in index.html (data-staff marks the ones for approvers and
// admins only).
//
// Polling, not a server push: every POLL_MS the visible page re-reads its
// list from the JSON API (one small request per page; paused while the tab
// is hidden). It needs no new API surface and no long-lived connections on
// the admin listener, and countdowns run locally between polls.

import { token, get, call, setUnauthorizedHandler } from './api.js';
import { h, clear, setText } from './dom.js';
import { closeDialog } from './dialog.js';
import * as signin from './signin.js';
import * as requests from './requests.js';
import * as sessions from './sessions.js';
import * as grants from './grants.js';
import * as audit from './audit.js';
import * as access from './access.js';
import * as request from './request.js';
import * as recordings from './recordings.js';
import * as watch from './watch.js';

const PAGES = { requests, sessions, grants, audit, access, request, recordings, watch };
const POLL_MS = 2000;

const state = { me: null, name: null, page: null, timer: null, epoch: 0 };
const main = () => document.getElementById('main');

function stopPolling() {
  state.epoch += 1;
  if (state.timer) clearTimeout(state.timer);
  state.timer = null;
}

function startPolling() {
  stopPolling();
  const epoch = state.epoch;
  const tick = async () => {
    if (epoch !== state.epoch) return;
    if (!document.hidden && state.page) {
      await state.page.refresh();
    }
    if (epoch === state.epoch) state.timer = setTimeout(tick, POLL_MS);
  };
  state.timer = setTimeout(tick, POLL_MS);
}

// Refresh now (after an action), then carry on polling from here.
async function refreshSoon() {
  if (!state.page) return;
  stopPolling();
  const epoch = state.epoch;
  await state.page.refresh();
  if (epoch === state.epoch) startPolling();
}

function unmount() {
  stopPolling();
  if (state.page) state.page.unmount();
  state.page = null;
  state.name = null;
}

function showSignIn(notice) {
  unmount();
  closeDialog();
  state.me = null;
  document.getElementById('nav').hidden = true;
  document.getElementById('who').hidden = true;
  document.title = 'Sign in · jitgate console';
  state.page = signin.mount(main(), {
    notice,
    onSignedIn(me) {
      state.me = me;
      route(true);
    },
  });
}

function roleOf(me) {
  if (me.admin) return 'admin';
  if (me.approver_of && me.approver_of.length) return `approver (${me.approver_of.join(', ')})`;
  return 'requester';
}

// Approvers and admins oversee others' access; everyone else is a
// requester, whose console is their own access.
function isStaff(me) {
  return !!(me.admin || (me.approver_of && me.approver_of.length));
}

function route(focus) {
  if (!state.me) return;
  // "#/request?target=db" -> page "request" (the page reads the rest).
  let name = location.hash.replace(/^#\/?/, '').split('?')[0];
  if (!PAGES[name]) {
    name = isStaff(state.me) ? 'requests' : 'access';
    history.replaceState(null, '', `#/${name}`);
  }
  if (name === state.name && state.page) return;
  unmount();
  closeDialog();
  document.getElementById('nav').hidden = false;
  document.getElementById('who').hidden = false;
  setText(document.getElementById('who-name'), `${state.me.user} · ${roleOf(state.me)}${state.me.locked ? ' · LOCKED' : ''}`);
  for (const a of document.querySelectorAll('#nav a')) {
    // A requester's nav is their own pages; the others still open by URL
    // and show what the API allows (their own items, or its 403).
    a.hidden = 'staff' in a.dataset && !isStaff(state.me) && a.dataset.page !== name;
    if (a.dataset.page === name) a.setAttribute('aria-current', 'page');
    else a.removeAttribute('aria-current');
  }
  const root = clear(main());
  const page = PAGES[name];
  document.title = `${page.TITLE} · jitgate console`;
  state.name = name;
  state.page = page.mount(root, { me: state.me, refreshSoon, count: setCount });
  if (focus) {
    const h1 = root.querySelector('h1');
    if (h1) h1.focus();
  }
  state.page.refresh().then(() => {
    if (state.page && state.name === name) startPolling();
  });
}

function setCount(name, n) {
  const el = document.getElementById(`nav-${name}-count`);
  if (el) setText(el, n ? String(n) : '');
}

// A console bug or a blocked resource is reported on the page (and counted
// on <html data-problems> for the browser tests), never a silent failure.
function reportProblem(text) {
  const root = document.documentElement;
  root.dataset.problems = String(Number(root.dataset.problems || 0) + 1);
  const conn = document.getElementById('conn');
  if (conn) {
    clear(conn).appendChild(h('p', { class: 'notice error', role: 'alert' },
      h('strong', { text: 'The console hit a problem: ' }), text,
      ' Reload the page; the jitgate CLI can do the same work.'));
  }
}

async function boot() {
  document.addEventListener('securitypolicyviolation', (e) => {
    reportProblem(`the browser blocked ${e.blockedURI || 'a resource'} (${e.violatedDirective}).`);
  });
  window.addEventListener('error', (e) => reportProblem(e.message || 'a script error.'));
  window.addEventListener('unhandledrejection', (e) => reportProblem(String(e.reason && e.reason.message || e.reason)));
  setUnauthorizedHandler((err) => {
    token.clear();
    showSignIn(Object.assign(err, {
      message: 'Your token is no longer accepted (it may have been removed or rotated in the config). Sign in again.',
    }));
  });
  document.getElementById('signout').addEventListener('click', async () => {
    // A sign-in through the IdP also ends at the server, on every instance.
    if (state.me && state.me.via === 'oidc') {
      try {
        await call('POST', '/v1/auth/logout', {});
      } catch (err) {
        // Already ended or the API is away: the tab forgets it all the same.
      }
    }
    token.clear();
    showSignIn('Signed out. The token was removed from this tab.');
  });
  window.addEventListener('hashchange', () => route(true));
  document.addEventListener('visibilitychange', () => {
    if (!document.hidden && state.me) refreshSoon();
  });
  // Back from the IdP: /#code=... is a one-time code to trade for a
  // sign-in token (POST /auth/exchange). It leaves the address bar first,
  // so it is neither kept in history nor reused on a reload.
  if (location.hash.startsWith('#code=')) {
    const code = decodeURIComponent(location.hash.slice('#code='.length));
    history.replaceState(null, '', `${location.pathname}#/requests`);
    try {
      const r = await call('POST', '/auth/exchange', { code });
      token.set(r.token);
    } catch (err) {
      token.clear();
      showSignIn(err);
      return;
    }
  }
  if (!token.get()) {
    showSignIn();
    return;
  }
  const root = main();
  clear(root).appendChild(h('p', { class: 'loading', text: 'Signing in…' }));
  try {
    state.me = await get('/v1/whoami');
    route(false);
  } catch (err) {
    if (err.status === 401) return; // the handler has shown the sign-in page
    showSignIn(err);
  }
}

boot();
