// An access token of the demo's requesting app (`shop-app`) for one of the
// people of portal-provider.mjs, by the authorization code flow with PKCE,
// signing in on the provider's development pages over plain HTTP (no
// browser): what the demo needs to play alice's app.
//
//   node app-token.mjs ISSUER PERSON     prints the access token

import { createHash, randomBytes } from 'node:crypto';
import { RESOURCE, SHOP_REDIRECT } from './portal-provider.mjs';

const b64url = (b) => b.toString('base64url');

/** Follows the provider's redirects by hand, keeping its cookies, until it
 * sends the browser to the app's callback; returns that URL. */
async function follow(url, cookies, init = {}) {
  for (let hop = 0; hop < 20; hop += 1) {
    const r = await fetch(url, {
      ...init,
      redirect: 'manual',
      headers: { ...(init.headers ?? {}), cookie: [...cookies].map(([k, v]) => `${k}=${v}`).join('; ') },
    });
    for (const c of r.headers.getSetCookie()) {
      const [pair] = c.split(';');
      const i = pair.indexOf('=');
      cookies.set(pair.slice(0, i), pair.slice(i + 1));
    }
    const location = r.headers.get('location');
    if (location === null) return { url, html: await r.text() };
    const next = new URL(location, url).toString();
    if (next.startsWith(SHOP_REDIRECT)) return { callback: next };
    url = next;
    init = {};
  }
  throw new Error('too many redirects');
}

/** Submits the provider's development form on `page` (login or consent). */
async function submit(page, cookies, fields) {
  const action = /<form[^>]*action="([^"]+)"/.exec(page.html)?.[1];
  if (!action) throw new Error(`no form at ${page.url}:\n${page.html.slice(0, 500)}`);
  return follow(new URL(action, page.url).toString(), cookies, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams(fields),
  });
}

export async function appToken(issuer, person) {
  const verifier = b64url(randomBytes(32));
  const query = new URLSearchParams({
    response_type: 'code',
    client_id: 'shop-app',
    redirect_uri: SHOP_REDIRECT,
    scope: 'openid payments:refund files:write',
    resource: RESOURCE,
    code_challenge: b64url(createHash('sha256').update(verifier).digest()),
    code_challenge_method: 'S256',
    state: b64url(randomBytes(16)),
  });
  const cookies = new Map();
  let step = await follow(`${issuer}/auth?${query}`, cookies);
  step = await submit(step, cookies, { prompt: 'login', login: person, password: 'any' });
  if (!step.callback) step = await submit(step, cookies, { prompt: 'consent' });
  if (!step.callback) throw new Error(`the provider did not send ${person} back to the app`);
  const code = new URL(step.callback).searchParams.get('code');
  const r = await fetch(`${issuer}/token`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({
      grant_type: 'authorization_code',
      code,
      redirect_uri: SHOP_REDIRECT,
      code_verifier: verifier,
      client_id: 'shop-app',
      client_secret: 'shop-secret',
      resource: RESOURCE,
    }),
  });
  const body = await r.json();
  if (r.status !== 200) throw new Error(`token: ${r.status} ${JSON.stringify(body)}`);
  return body.access_token;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const [, , issuer, person] = process.argv;
  if (!issuer || !person) {
    console.error('usage: node app-token.mjs ISSUER PERSON');
    process.exit(2);
  }
  console.log(await appToken(issuer, person));
}
