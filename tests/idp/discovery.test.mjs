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
import { spawn } from 'node:child_process';
import { mkdtempSync, writeFileSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { once } from 'node:events';
import { start, CLIENTS, RESOURCE } from './provider.mjs';

const bin = process.env.GREENLIGHT_BIN;
if (!bin) throw new Error('set GREENLIGHT_BIN to the greenlight binary');

const POLICY = '@id("read") permit (principal, action == Action::"doc.read", resource) when { principal.scopes.contains("docs:read") };\n';

/** greenlight.toml for the provider at `issuer`, keys found by discovery
 * (`jwks` absent) or in the bundle's `idp.jwks.json`. */
function config(issuer, copied) {
  return `[[issuers]]
issuer = "${issuer}"
audience = "${RESOURCE}"
algorithms = ["RS256", "ES256", "EdDSA"]
require_typ = "at+jwt"
${copied ? 'jwks = "idp.jwks.json"\n' : ''}
[key_fetch]
allow_http_loopback = true

[action_tokens]
issuer = "https://greenlight.example.com"
audience = "${RESOURCE}"

[[routes]]
method = "GET"
path = "/docs/{id}"
action = "doc.read"
resource = { type = "Doc", id = "{id}" }
`;
}

async function freePort() {
  const s = createServer();
  s.listen(0, '127.0.0.1');
  await once(s, 'listening');
  const { port } = s.address();
  s.close();
  await once(s, 'close');
  return port;
}

/** Starts `greenlight serve` on a bundle made of `files`; stopped by PID. */
async function serve(files) {
  const dir = mkdtempSync(join(tmpdir(), 'greenlight-idp-'));
  for (const [name, text] of Object.entries(files)) writeFileSync(join(dir, name), text);
  const port = await freePort();
  const child = spawn(bin, ['serve', '--bundle', dir, '--listen', `127.0.0.1:${port}`,
    '--store', `sqlite://${join(dir, 'greenlight.db')}`], { stdio: ['ignore', 'ignore', 'pipe'] });
  let log = '';
  child.stderr.on('data', (d) => { log += d; });
  const url = `http://127.0.0.1:${port}`;
  for (let i = 0; ; i += 1) {
    try {
      const r = await fetch(`${url}/healthz`);
      if (r.status === 200) break;
    } catch { /* not listening yet */ }
    if (i > 600 || child.exitCode !== null) throw new Error(`greenlight serve did not start:\n${log}`);
    await new Promise((r) => setTimeout(r, 50));
  }
  return {
    url,
    log: () => log,
    async healthz() {
      return (await fetch(`${url}/healthz`)).json();
    },
    /** The decision on `GET /docs/d1` with `token`. */
    async read(token) {
      const r = await fetch(`${url}/v1/check`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ method: 'GET', path: '/docs/d1', headers: { authorization: `Bearer ${token}` } }),
      });
      assert.equal(r.status, 200);
      return r.json();
    },
    async stop() {
      child.kill('SIGTERM');
      if (child.exitCode === null) await once(child, 'exit');
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

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
