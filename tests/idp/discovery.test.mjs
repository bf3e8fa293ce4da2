// `greenlight serve` against a real OpenID provider (node-oidc-provider):
// a bundle that names only the issuer finds the keys by discovery and
// decides every algorithm's tokens exactly as a bundle with the provider's
// JWKS copied in by hand; after the provider rotates its keys, the
// discovering server accepts the new tokens at once (one more fetch, for
// all three algorithms) while the hand-copied bundle cannot.
//
//   GREENLIGHT_BIN=target/debug/greenlight node --test tests/idp/

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { start, CLIENTS } from './provider.mjs';
import { config, serve, POLICY } from './greenlight.mjs';

let idp;
let discovering;
let copied;

before(async () => {
  idp = await start();
  const jwks = await idp.publicJwks();
  discovering = await serve({ 'greenlight.toml': config(idp.issuer, false), 'policy.cedar': POLICY });
  copied = await serve({
    'greenlight.toml': config(idp.issuer, true),
    'policy.cedar': POLICY,
    'idp.jwks.json': JSON.stringify(jwks),
  });
});

after(async () => {
  await discovering?.stop();
  await copied?.stop();
  await idp?.close();
});

test('the issuer alone: discovery finds the provider\'s keys at start', async () => {
  const h = await discovering.healthz();
  assert.equal(h.status, 'ok');
  assert.deepEqual(
    { ...h.keys[0], age_seconds: undefined, fresh_for_seconds: undefined },
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
  // The copied bundle fetches nothing.
  assert.deepEqual((await copied.healthz()).keys, []);
});

test('every algorithm\'s tokens are decided as with the hand-copied key set', async () => {
  for (const [client, alg] of Object.entries(CLIENTS)) {
    const token = await idp.token(client);
    const found = await discovering.read(token);
    const handCopied = await copied.read(token);
    assert.equal(found.verdict.kind, 'allow', `${alg}: ${JSON.stringify(found)}`);
    assert.equal(found.verdict.principal.subject, client);
    assert.equal(found.verdict.principal.issuer, idp.issuer);
    assert.deepEqual(found.verdict.principal.scopes, ['docs:read']);
    // The same decision, but for the bundle hash each reports.
    assert.deepEqual({ ...found, policy_hash: null }, { ...handCopied, policy_hash: null }, alg);
    // A signature that does not verify is refused alike.
    const [h, p, s] = token.split('.');
    const forged = `${h}.${p}.${s.slice(0, -4)}${s.slice(-4) === 'AAAA' ? 'BBBB' : 'AAAA'}`;
    const a = await discovering.read(forged);
    const b = await copied.read(forged);
    assert.equal(a.verdict.code, 'token-bad-signature', `${alg}: ${JSON.stringify(a)}`);
    assert.deepEqual(a.verdict, b.verdict);
  }
});

test('after the provider rotates, its new tokens pass at once where keys are fetched', async () => {
  await idp.rotate();
  const before = idp.counts.jwks;
  for (const [client, alg] of Object.entries(CLIENTS)) {
    const token = await idp.token(client);
    const kid = `${alg.toLowerCase()}-2`;
    const found = await discovering.read(token);
    assert.equal(found.verdict.kind, 'allow', `${alg}: ${JSON.stringify(found)}`);
    const handCopied = await copied.read(token);
    assert.deepEqual(handCopied.verdict, {
      kind: 'deny', code: 'token-unknown-key', message: `no key with kid \`${kid}\``,
    });
  }
  // One fetch for the first unknown kid brought all three new keys.
  assert.equal(idp.counts.jwks - before, 1);
  assert.deepEqual(
    (await discovering.healthz()).keys[0].kids,
    ['rs256-2', 'es256-2', 'eddsa-2', 'rs256-1', 'es256-1', 'eddsa-1'],
  );
});
