// Sign-in with an API token, or (when the server has [auth.oidc]) through
// the organisation's IdP. The token is checked with GET /v1/whoami before
// it is kept, so a wrong one is refused here with the API's own answer. The
// SSO button is a plain link to /auth/login: the IdP's round trip ends at
// /#code=..., which app.js trades for a sign-in token.

import { call, token, ApiError } from './api.js';
import { h, clear, errorBox } from './dom.js';

// notice: an ApiError (shown as an error) or a string (shown as a note).
export function mount(root, { notice, onSignedIn }) {
  const input = h('input', {
    id: 'token',
    name: 'token',
    type: 'password',
    autocomplete: 'off',
    spellcheck: 'false',
    autocapitalize: 'off',
    required: true,
    'aria-describedby': 'token-help',
  });
  const status = h('div', { id: 'signin-status', class: 'signin-status' });
  const button = h('button', { type: 'submit', class: 'primary', text: 'Sign in' });
  const form = h(
    'form',
    { class: 'signin', novalidate: true, 'aria-labelledby': 'signin-title' },
    h('h1', { id: 'signin-title', tabindex: '-1', text: 'Sign in to the jitgate console' }),
    h('div', { class: 'field' },
      h('label', { for: 'token', text: 'API token' }),
      input,
      h('p', { id: 'token-help', class: 'hint' },
        'The same bearer token the CLI uses (', h('code', { text: 'JITGATE_TOKEN' }),
        '). It is kept only in this browser tab (sessionStorage) and sent only to this jitgate\'s API; closing the tab signs you out.')),
    status,
    h('div', { class: 'buttons' }, button),
  );
  const sso = h('div', { class: 'signin-sso', hidden: true },
    h('p', { class: 'hint', text: 'Or sign in with your organisation\'s account:' }),
    h('a', { id: 'sso', class: 'button primary', href: '/auth/login', text: 'Sign in with SSO' }));
  form.appendChild(sso);
  clear(root).appendChild(form);
  call('GET', '/auth/info').then((info) => {
    if (info && info.oidc) sso.hidden = false;
  }, () => {});
  if (notice instanceof Error) status.appendChild(errorBox(notice));
  else if (notice) status.appendChild(h('p', { class: 'notice', role: 'status', text: notice }));

  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const t = input.value.trim();
    clear(status);
    if (!t) {
      status.appendChild(h('p', { class: 'notice error', role: 'alert', text: 'Enter your API token.' }));
      input.focus();
      return;
    }
    button.disabled = true;
    try {
      const me = await call('GET', '/v1/whoami', undefined, t);
      token.set(t);
      input.value = '';
      onSignedIn(me);
    } catch (err) {
      token.clear();
      const e = err instanceof ApiError && err.status === 401
        ? new ApiError(401, err.code, 'That token was not accepted. Check that it is complete, or ask an admin for one: "jitgate token new" prints a token and the hash that goes in the config.')
        : err;
      status.appendChild(errorBox(e));
      input.focus();
      input.select();
    } finally {
      button.disabled = false;
    }
  });
  input.focus();
  return { refresh() {}, unmount() {} };
}
