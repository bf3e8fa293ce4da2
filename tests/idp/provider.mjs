// A real OpenID provider for Greenlight's end-to-end tests: node-oidc-provider
// (pinned in package.json) on a loopback port, issuing RFC 9068 JWT access
// tokens by client credentials with a resource indicator. One client per
// signing algorithm: `app-rs256`, `app-es256`, `app-eddsa`, each with the
// secret `secret-<client_id>`, each granted `docs:read` for the resource
// https://api.example.com. Its signing keys are made at start; `rotate`
// publishes a new key per algorithm (the old ones stay published until
// `retire`), and the provider then signs with the new ones.

import http from 'node:http';
import { once } from 'node:events';
import { generateKeyPair, exportJWK } from 'jose';
import Provider from 'oidc-provider';

/** The API the tokens are for (the `resource` and `aud`). */
export const RESOURCE = 'https://api.example.com';

/** Each client and the algorithm its access tokens are signed with. */
export const CLIENTS = { 'app-rs256': 'RS256', 'app-es256': 'ES256', 'app-eddsa': 'EdDSA' };

/**
 * Clients whose access tokens carry the claims real providers put in them
 * (EdDSA): a namespaced claim as Auth0 writes them, Keycloak's nested
 * realm roles, the sign-in's class (`acr`) and time (`auth_time`), and for
 * `agent-claims` an RFC 8693 actor.
 */
export const CLAIMS_CLIENTS = {
  'app-claims': {
    'https://example.com/department': 'finance',
    realm_access: { roles: ['reader', 'offline_access'] },
    acr: 'urn:example:pwd',
  },
  'app-mfa': {
    'https://example.com/department': 'finance',
    realm_access: { roles: ['reader'] },
    acr: 'urn:example:mfa',
  },
  'agent-claims': {
    'https://example.com/department': 'finance',
    realm_access: { roles: ['reader'] },
    acr: 'urn:example:mfa',
    act: { sub: 'agent-1' },
  },
};

/** The algorithm a client's tokens are signed with. */
const algOf = (client) => CLIENTS[client] ?? 'EdDSA';

let generation = 0;

/** A private JWK per algorithm, with kids naming the generation. */
async function keys() {
  generation += 1;
  const out = [];
  for (const [alg, opts] of [['RS256', { modulusLength: 2048 }], ['ES256', {}], ['EdDSA', { crv: 'Ed25519' }]]) {
    const { privateKey } = await generateKeyPair(alg, { ...opts, extractable: true });
    const jwk = await exportJWK(privateKey);
    out.push({ ...jwk, alg, use: 'sig', kid: `${alg.toLowerCase()}-${generation}` });
  }
  return out;
}

function provider(issuer, jwks) {
  const p = new Provider(issuer, {
    clients: [...Object.keys(CLIENTS), ...Object.keys(CLAIMS_CLIENTS)].map((id) => ({
      client_id: id,
      client_secret: `secret-${id}`,
      grant_types: ['client_credentials'],
      redirect_uris: [],
      response_types: [],
      token_endpoint_auth_method: 'client_secret_post',
    })),
    jwks: { keys: jwks },
    scopes: ['docs:read'],
    features: {
      devInteractions: { enabled: false },
      clientCredentials: { enabled: true },
      resourceIndicators: {
        enabled: true,
        defaultResource: () => RESOURCE,
        useGrantedResource: () => true,
        getResourceServerInfo: (ctx, resource, client) => {
          if (resource !== RESOURCE) throw new Error(`unknown resource ${resource}`);
          return {
            scope: 'docs:read',
            audience: RESOURCE,
            accessTokenFormat: 'jwt',
            accessTokenTTL: 3600,
            jwt: { sign: { alg: algOf(client.clientId) } },
          };
        },
      },
    },
    extraTokenClaims: (ctx, token) => {
      const extra = CLAIMS_CLIENTS[token.clientId];
      // auth_time: a sign-in a minute ago, as the provider's clock says.
      return extra ? { ...extra, auth_time: Math.floor(Date.now() / 1000) - 60 } : undefined;
    },
    enabledJWA: {
      requestObjectSigningAlgValues: ['RS256', 'ES256', 'EdDSA'],
    },
  });
  p.proxy = false;
  return p;
}

/**
 * Starts a provider on 127.0.0.1 (port 0: any free one). Returns its issuer,
 * how to get a token, how many times its JWKS was fetched, and how to
 * rotate and retire keys and stop it.
 */
export async function start() {
  let jwks = await keys();
  let retiring = [];
  const counts = { jwks: 0, discovery: 0 };
  let current;
  const server = http.createServer((req, res) => {
    if (req.url === '/jwks') counts.jwks += 1;
    if (req.url === '/.well-known/openid-configuration') counts.discovery += 1;
    current.callback()(req, res);
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const issuer = `http://127.0.0.1:${server.address().port}`;
  // The provider signs with the first key of each algorithm; keys being
  // retired are published after them.
  const rebuild = () => {
    current = provider(issuer, [...jwks, ...retiring]);
  };
  rebuild();
  return {
    issuer,
    counts,
    /** The public JWKS as the provider publishes it now. */
    async publicJwks() {
      const r = await fetch(`${issuer}/jwks`);
      counts.jwks -= 1; // the test's own fetch is not Greenlight's
      return r.json();
    },
    /** An access token for `client` (client credentials, the resource). */
    async token(client) {
      const r = await fetch(`${issuer}/token`, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        body: new URLSearchParams({
          grant_type: 'client_credentials',
          client_id: client,
          client_secret: `secret-${client}`,
          resource: RESOURCE,
          scope: 'docs:read',
        }),
      });
      const body = await r.json();
      if (r.status !== 200) throw new Error(`token for ${client}: ${r.status} ${JSON.stringify(body)}`);
      return body.access_token;
    },
    /** Publishes new keys and signs with them; the old ones stay published. */
    async rotate() {
      retiring = [...jwks, ...retiring];
      jwks = await keys();
      rebuild();
    },
    /** Stops publishing the keys replaced by `rotate`. */
    retire() {
      retiring = [];
      rebuild();
    },
    async close() {
      server.closeAllConnections();
      server.close();
      await once(server, 'close');
    },
  };
}
