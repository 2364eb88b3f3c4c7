// A real OpenID provider (panva/oidc-provider, OpenID Certified) for
// jitgate's sign-in tests and the README's local recipe. Test use only: its
// login form is the library's development form, which takes any password.
//
//   node idp.mjs PORT REDIRECT_URL [REDIRECT_URL...]
//
// Issuer: http://127.0.0.1:PORT. Client `jitgate` (public, PKCE S256; with
// IDP_CLIENT_SECRET set, confidential). Accounts: IDP_USERS (JSON
// {"login": {"preferred_username": ..., "groups": [...]}}) or the defaults
// below. A fresh RSA signing key on every start (IDP_KEY_ID names it).
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import Provider from 'oidc-provider';

const [port, ...redirects] = process.argv.slice(2);
if (!port || redirects.length === 0) {
  console.error('usage: node idp.mjs PORT REDIRECT_URL [REDIRECT_URL...]');
  process.exit(2);
}

const users = process.env.IDP_USERS ? JSON.parse(process.env.IDP_USERS) : {
  alice: { preferred_username: 'alice', groups: ['oncall', 'jitgate-admins'] },
  bob: { preferred_username: 'bob', groups: ['oncall', 'idp-only-sre'] },
  carol: { preferred_username: 'carol', groups: ['leads'] },
  badname: { preferred_username: 'Bad Name', groups: ['oncall'] },
};

const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
const jwk = privateKey.export({ format: 'jwk' });
jwk.kid = process.env.IDP_KEY_ID || randomBytes(8).toString('hex');
jwk.use = 'sig';
jwk.alg = 'RS256';

const client = {
  client_id: 'jitgate',
  redirect_uris: redirects,
  grant_types: ['authorization_code'],
  response_types: ['code'],
};
if (process.env.IDP_CLIENT_SECRET) {
  client.client_secret = process.env.IDP_CLIENT_SECRET;
} else {
  client.token_endpoint_auth_method = 'none';
}

const issuer = `http://127.0.0.1:${port}`;
const provider = new Provider(issuer, {
  clients: [client],
  jwks: { keys: [jwk] },
  cookies: { keys: [randomBytes(32).toString('hex')] },
  pkce: { required: () => true },
  scopes: ['openid', 'profile', 'groups'],
  claims: { openid: ['sub'], profile: ['preferred_username'], groups: ['groups'] },
  // The ID token carries the profile and groups claims (jitgate reads the ID
  // token only, not the userinfo endpoint).
  conformIdTokenClaims: false,
  async findAccount(_ctx, id) {
    const u = users[id];
    if (!u) return undefined;
    return { accountId: id, claims: async () => ({ sub: id, ...u }) };
  },
  // jitgate is a first-party client: no consent screen.
  async loadExistingGrant(ctx) {
    const id = ctx.oidc.result?.consent?.grantId
      || ctx.oidc.session.grantIdFor(ctx.oidc.client.clientId);
    if (id) return ctx.oidc.provider.Grant.find(id);
    const grant = new ctx.oidc.provider.Grant({
      clientId: ctx.oidc.client.clientId,
      accountId: ctx.oidc.session.accountId,
    });
    grant.addOIDCScope('openid profile groups');
    await grant.save();
    return grant;
  },
});
// Test-only: IDP_PUBLISH_OTHER_KEY=same-kid|other-kid publishes, at the
// JWKS URL, a key that did not sign the ID tokens (under the signing key's
// id, or under another id), so a relying party must refuse them.
const otherMode = process.env.IDP_PUBLISH_OTHER_KEY;
if (otherMode) {
  const other = generateKeyPairSync('rsa', { modulusLength: 2048 }).publicKey.export({ format: 'jwk' });
  other.kid = otherMode === 'same-kid' ? jwk.kid : `other-${jwk.kid}`;
  other.use = 'sig';
  other.alg = 'RS256';
  provider.use(async (ctx, next) => {
    if (ctx.path === '/jwks') {
      ctx.type = 'application/jwk-set+json';
      ctx.body = JSON.stringify({ keys: [other] });
      return;
    }
    await next();
  });
}

provider.listen(Number(port), '127.0.0.1', () => {
  console.log(`idp listening on ${issuer} kid=${jwk.kid}`);
});
for (const sig of ['SIGTERM', 'SIGINT']) process.on(sig, () => process.exit(0));
