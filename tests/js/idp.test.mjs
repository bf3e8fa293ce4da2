// The Node host against a real OpenID provider (node-oidc-provider, pinned
// in tests/idp/package.json; tests/idp/provider.mjs), as tests/idp tests
// `greenlight serve`: a bundle that names only the issuer finds the keys by
// discovery (the middleware's KeySources) and decides every algorithm's
// tokens exactly as a bundle with the provider's JWKS copied in by hand;
// after the provider rotates its keys, the middleware lets the new tokens
// through at once (one more JWKS fetch, for all three algorithms) while the
// hand-copied bundle cannot verify them.
//
// Needs tests/idp/node_modules: bindings/js/test.sh installs it
// (`cd tests/idp && npm ci`).

import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { createServer } from 'node:http';
import { join, resolve } from 'node:path';
import { after, before, test } from 'node:test';
import { Engine, withGreenlight } from '../../bindings/js/src/index.js';

const root = resolve(import.meta.dirname, '..', '..');
const idpDir = join(root, 'tests/idp');
for (const pkg of ['oidc-provider', 'jose']) {
  if (!existsSync(join(idpDir, 'node_modules', pkg, 'package.json'))) {
    throw new Error(`tests/idp/node_modules/${pkg} is missing: run \`(cd tests/idp && npm ci)\` ` +
      '(bindings/js/test.sh does) before these tests');
  }
}
const { start, CLIENTS } = await import('../idp/provider.mjs');
// The bundle tests/idp serves to `greenlight serve`, the same here.
const { config, POLICY } = await import('../idp/greenlight.mjs');

const listen = (server) => new Promise((ok) => server.listen(0, '127.0.0.1', () => ok(`http://127.0.0.1:${server.address().port}`)));
const now = () => Math.floor(Date.now() / 1000);
const request = (token) => ({ method: 'GET', path: '/docs/d1', headers: [['authorization', `Bearer ${token}`]] });

const engine = await Engine.load();
let idp;
let discovering; // the policy whose issuer's keys the middleware fetches
let copied; // the policy with the provider's JWKS copied in
let service; // a stand-in approval service: its JWKS only
let app;
let gate;
let base;

before(async () => {
  idp = await start();
  const jwks = await idp.publicJwks();
  discovering = engine.loadBundle([['greenlight.toml', config(idp.issuer, false)], ['policy.cedar', POLICY]]);
  copied = engine.loadBundle([
    ['greenlight.toml', config(idp.issuer, true)],
    ['idp.jwks.json', JSON.stringify(jwks)],
    ['policy.cedar', POLICY],
  ]);
  const serviceJwks = readFileSync(join(root, 'tests/bundles/tokens/greenlight.jwks.json'), 'utf8');
  service = createServer((req, res) => res.end(serviceJwks));
  const serviceUrl = await listen(service);
  // The upstream answers with the decision the middleware let through.
  gate = withGreenlight({ policy: discovering, serviceUrl, log: () => {} }, (req, res) => res.end(JSON.stringify(req.greenlight)));
  app = createServer(gate);
  base = await listen(app);
  await gate.ready;
});

after(async () => {
  gate?.close();
  app?.close();
  service?.close();
  discovering?.close();
  copied?.close();
  engine.close();
  await idp?.close();
});

/** `GET /docs/d1` through the middleware: [status, body]. */
async function read(token) {
  const r = await fetch(`${base}/docs/d1`, { headers: { authorization: `Bearer ${token}` } });
  return [r.status, await r.json()];
}

test('the issuer alone: discovery finds the provider\'s keys before serving', () => {
  const [h] = gate.keySources.health();
  assert.deepEqual(
    { ...h, age_seconds: undefined, fresh_for_seconds: undefined },
    {
      issuer: idp.issuer,
      source: 'discovery',
      jwks_uri: `${idp.issuer}/jwks`,
      keys: true,
      kids: ['rs256-1', 'es256-1', 'eddsa-1'],
      age_seconds: undefined,
      fresh_for_seconds: undefined,
      last_error: null,
    },
  );
  assert.deepEqual(idp.counts, { discovery: 1, jwks: 1 });
});

test('every algorithm\'s tokens are decided as with the hand-copied key set', async () => {
  for (const [client, alg] of Object.entries(CLIENTS)) {
    const token = await idp.token(client);
    const [status, found] = await read(token);
    const handCopied = copied.evaluateHttp(request(token), now());
    assert.equal(status, 200, `${alg}: ${JSON.stringify(found)}`);
    assert.equal(found.verdict.kind, 'allow', alg);
    assert.equal(found.verdict.principal.subject, client);
    assert.equal(found.verdict.principal.issuer, idp.issuer);
    assert.deepEqual(found.verdict.principal.scopes, ['docs:read']);
    // The same decision, but for the bundle hash each reports.
    assert.deepEqual({ ...found, policy_hash: null }, { ...handCopied, policy_hash: null }, alg);
    // A signature that does not verify is refused alike.
    const [h, p, s] = token.split('.');
    const forged = `${h}.${p}.${s.slice(0, -4)}${s.slice(-4) === 'AAAA' ? 'BBBB' : 'AAAA'}`;
    const a = discovering.evaluateHttp(request(forged), now());
    const b = copied.evaluateHttp(request(forged), now());
    assert.equal(a.verdict.code, 'token-bad-signature', `${alg}: ${JSON.stringify(a)}`);
    assert.deepEqual(a.verdict, b.verdict);
    const [forgedStatus, forgedBody] = await read(forged);
    assert.deepEqual([forgedStatus, forgedBody.code], [401, 'token-bad-signature']);
  }
  assert.deepEqual(idp.counts, { discovery: 1, jwks: 1 }, 'nothing fetched again');
});

test('after the provider rotates, its new tokens pass the middleware at once', async () => {
  await idp.rotate();
  const before = idp.counts.jwks;
  for (const [client, alg] of Object.entries(CLIENTS)) {
    const token = await idp.token(client);
    const kid = `${alg.toLowerCase()}-2`;
    const [status, found] = await read(token);
    assert.equal(status, 200, `${alg}: ${JSON.stringify(found)}`);
    assert.equal(found.verdict.kind, 'allow', alg);
    assert.equal(found.verdict.principal.subject, client);
    const handCopied = copied.evaluateHttp(request(token), now());
    assert.deepEqual(handCopied.verdict, {
      kind: 'deny', code: 'token-unknown-key', message: `no key with kid \`${kid}\``,
    });
  }
  // One fetch for the first unknown kid brought all three new keys.
  assert.equal(idp.counts.jwks - before, 1);
  assert.equal(idp.counts.discovery, 1);
  assert.deepEqual(
    gate.keySources.health()[0].kids,
    ['rs256-2', 'es256-2', 'eddsa-2', 'rs256-1', 'es256-1', 'eddsa-1'],
  );
});
