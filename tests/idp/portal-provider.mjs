// A real OpenID provider for the portal's browser tests: node-oidc-provider
// (pinned in package.json) on loopback, with its development sign-in pages
// (any password) and the people of the demo:
//
//   alice        the requester: a tenant admin of `acme`
//   fin-ann      finance
//   fin-bob      finance
//   owner-acme   the owner of tenant `acme`
//   owner-globex the owner of tenant `globex`
//   outsider     in no group
//   audit-amy    holds the role `greenlight-auditor`
//
// Two clients use the authorization code flow: `greenlight-portal` (the
// portal; secret `portal-secret`, ID tokens signed with EdDSA, the people's
// groups, tenant and roles in them) and `shop-app` (the requesting app;
// secret `shop-secret`, RFC 9068 access tokens for https://api.example.com
// with the payments and files scopes and the same claims). `agent-app`
// (secret `agent-secret`) is an agent acting for the person: its tokens
// also carry `act: {sub: "shop-agent"}`.
//
//   node portal-provider.mjs PORTAL_REDIRECT_URI [PORT]
//
// Prints one JSON line, {"issuer": ...}, once listening; stops on SIGTERM.

import http from 'node:http';
import { once } from 'node:events';
import { generateKeyPair, exportJWK } from 'jose';
import Provider from 'oidc-provider';

export const RESOURCE = 'https://api.example.com';
/** Where `shop-app` is sent back to; the tests read the code off the URL. */
export const SHOP_REDIRECT = 'http://127.0.0.1:9/shop/callback';

export const PEOPLE = {
  alice: { groups: [], tenant: 'acme', roles: ['tenant-admin'] },
  'fin-ann': { groups: ['finance'], tenant: '', roles: [] },
  'fin-bob': { groups: ['finance'], tenant: '', roles: [] },
  'owner-acme': { groups: ['tenant-owner'], tenant: 'acme', roles: [] },
  'owner-globex': { groups: ['tenant-owner'], tenant: 'globex', roles: [] },
  outsider: { groups: [], tenant: '', roles: [] },
  'audit-amy': { groups: [], tenant: '', roles: ['greenlight-auditor'] },
};

const API_SCOPES = 'payments:read payments:refund files:write';

async function keys() {
  const out = [];
  for (const [alg, opts] of [['EdDSA', { crv: 'Ed25519' }], ['RS256', { modulusLength: 2048 }]]) {
    const { privateKey } = await generateKeyPair(alg, { ...opts, extractable: true });
    out.push({ ...(await exportJWK(privateKey)), alg, use: 'sig', kid: `${alg.toLowerCase()}-1` });
  }
  return out;
}

export async function start(portalRedirect, port = 0) {
  const server = http.createServer();
  server.listen(port, '127.0.0.1');
  await once(server, 'listening');
  const issuer = `http://127.0.0.1:${server.address().port}`;
  const provider = new Provider(issuer, {
    clients: [
      {
        client_id: 'greenlight-portal',
        client_secret: 'portal-secret',
        grant_types: ['authorization_code'],
        response_types: ['code'],
        redirect_uris: [portalRedirect],
        token_endpoint_auth_method: 'client_secret_basic',
        id_token_signed_response_alg: 'EdDSA',
      },
      ...['shop-app', 'agent-app'].map((id) => ({
        client_id: id,
        client_secret: `${id.split('-')[0]}-secret`,
        grant_types: ['authorization_code'],
        response_types: ['code'],
        redirect_uris: [SHOP_REDIRECT],
        token_endpoint_auth_method: 'client_secret_post',
      })),
    ],
    jwks: { keys: await keys() },
    findAccount: (ctx, id) => (PEOPLE[id]
      ? { accountId: id, claims: () => ({ sub: id, ...PEOPLE[id] }) }
      : undefined),
    claims: { openid: ['sub'], greenlight: ['groups', 'tenant', 'roles'] },
    scopes: ['openid', 'greenlight', ...API_SCOPES.split(' ')],
    // The people's claims go in the ID token itself, as the portal reads
    // them from there.
    conformIdTokenClaims: false,
    features: {
      devInteractions: { enabled: true },
      resourceIndicators: {
        enabled: true,
        defaultResource: (ctx, client) => (client.clientId === 'shop-app' ? RESOURCE : undefined),
        useGrantedResource: () => true,
        getResourceServerInfo: (ctx, resource) => {
          if (resource !== RESOURCE) throw new Error(`unknown resource ${resource}`);
          return {
            scope: API_SCOPES,
            audience: RESOURCE,
            accessTokenFormat: 'jwt',
            accessTokenTTL: 3600,
            jwt: { sign: { alg: 'EdDSA' } },
          };
        },
      },
    },
    extraTokenClaims: (ctx, token) => (token.accountId && PEOPLE[token.accountId]
      ? {
        ...PEOPLE[token.accountId],
        // An AI agent acting for the person (RFC 8693).
        ...(token.clientId === 'agent-app' ? { act: { sub: 'shop-agent' } } : {}),
      }
      : undefined),
  });
  provider.proxy = false;
  server.on('request', provider.callback());
  return {
    issuer,
    async close() {
      server.closeAllConnections();
      server.close();
      await once(server, 'close');
    },
  };
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const [, , redirect, port] = process.argv;
  if (!redirect) {
    console.error('usage: node portal-provider.mjs PORTAL_REDIRECT_URI [PORT]');
    process.exit(2);
  }
  const p = await start(redirect, Number(port ?? 0));
  console.log(JSON.stringify({ issuer: p.issuer }));
  process.on('SIGTERM', async () => {
    await p.close();
    process.exit(0);
  });
}
