// Issuers' keys from their providers (bindings/js/src/keys.js), as
// crates/server/tests/provider_keys.rs tests `greenlight serve`: a stand-in
// OpenID provider on loopback (discovery document and JWKS, counting every
// fetch), an injected clock driving freshness, and real HTTP between them.
// Discovery, the first fetch, a rotation found by an unknown `kid`, a flood
// of made-up `kid`s, failed fetches that keep the last good keys (with the
// Rust server's error texts), staleness that fails closed, and recovery;
// then the URL and freshness rules, and the middleware owning the keys.

import assert from 'node:assert/strict';
import { generateKeyPairSync, sign } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { checkUrl, DenialError, Engine, freshness, KeySources, LivePolicy, refreshIssuer, withGreenlight } from '../../bindings/js/src/index.js';

/** The time tokens are issued at (and decided at, 10 s later). */
const T0 = 1767225600;
const NOW = T0 + 10;

const engine = await Engine.load();
after(() => engine.close());

const b64u = (v) => Buffer.from(typeof v === 'string' ? v : JSON.stringify(v)).toString('base64url');

/** One of the provider's Ed25519 signing keys. */
class Key {
  constructor(kid) {
    this.kid = kid;
    const { privateKey, publicKey } = generateKeyPairSync('ed25519');
    this.privateKey = privateKey;
    this.public = { ...publicKey.export({ format: 'jwk' }), kid };
    this.private = { ...privateKey.export({ format: 'jwk' }), kid };
  }

  /** An access token for `sub`, issued at T0 for two hours, with this key's `kid` (or `kid`). */
  token(issuer, sub, kid = this.kid) {
    const header = b64u({ alg: 'EdDSA', typ: 'at+jwt', kid });
    const claims = b64u({
      iss: issuer, aud: 'https://api.example.com', sub, client_id: 'shop',
      iat: T0, exp: T0 + 7200, scope: 'docs:read',
    });
    const signature = sign(null, Buffer.from(`${header}.${claims}`), this.privateKey).toString('base64url');
    return `${header}.${claims}.${signature}`;
  }
}

/**
 * The stand-in provider: `/.well-known/openid-configuration` and `/jwks`,
 * which answers as `answer` says: `{keys, cache}`, `{status}`, `{huge}`
 * (10 MB of JSON, with a content-length, or chunked when `chunked`),
 * `{garbage}`, `{redirect}` or `{hang}`.
 */
class Provider {
  discoveries = 0;
  fetches = 0;
  /** How many bytes of a chunked huge body were written before the reader stopped. */
  written = 0;
  /** The `jwks_uri` its discovery document names instead of its own. */
  jwksUri = null;
  constructor(answer) {
    this.answer = answer;
    this.server = createServer((req, res) => this.#handle(req, res));
  }

  async start() {
    await new Promise((ok) => this.server.listen(0, '127.0.0.1', ok));
    this.base = `http://127.0.0.1:${this.server.address().port}`;
    return this;
  }

  set(answer) {
    this.answer = answer;
  }

  #handle(req, res) {
    if (req.url === '/.well-known/openid-configuration') {
      this.discoveries += 1;
      res.setHeader('content-type', 'application/json');
      res.end(JSON.stringify({ issuer: this.base, jwks_uri: this.jwksUri ?? `${this.base}/jwks` }));
      return;
    }
    if (req.url !== '/jwks') {
      res.statusCode = 404;
      res.end();
      return;
    }
    this.fetches += 1;
    const a = this.answer;
    if (a.keys !== undefined) {
      res.setHeader('content-type', 'application/json');
      if (a.cache !== undefined) res.setHeader('cache-control', a.cache);
      res.end(JSON.stringify({ keys: a.keys }));
    } else if (a.status !== undefined) {
      res.statusCode = a.status;
      res.end();
    } else if (a.huge) {
      const body = `{"keys":[],"pad":"${'x'.repeat(10_000_000)}"}`;
      res.setHeader('content-type', 'application/json');
      if (!a.chunked) {
        res.setHeader('content-length', Buffer.byteLength(body));
        res.end(body);
        return;
      }
      // Chunked, written as fast as the reader takes it: it must stop reading.
      let at = 0;
      const more = () => {
        while (at < body.length) {
          const chunk = body.slice(at, at + 65536);
          at += chunk.length;
          this.written = at;
          if (!res.write(chunk)) return res.once('drain', more);
        }
        res.end();
      };
      more();
    } else if (a.garbage) {
      res.end('<html>not a key set</html>');
    } else if (a.redirect) {
      res.writeHead(302, { location: a.redirect });
      res.end();
    } else if (a.hang) {
      // Never answers.
    }
  }

  close() {
    this.server.closeAllConnections();
    this.server.close();
  }
}

/**
 * The files of a bundle whose one issuer is `issuer`, its keys found by
 * discovery (or at `jwksUri`), plain HTTP allowed to loopback; `extra` goes
 * into `[key_fetch]`.
 */
function bundleFiles(issuer, { jwksUri, extra = '' } = {}) {
  const config = `
[[issuers]]
issuer = "${issuer}"
audience = "https://api.example.com"
algorithms = ["EdDSA"]
${jwksUri ? `jwks_uri = "${jwksUri}"\n` : ''}
[key_fetch]
allow_http_loopback = true
min_age_seconds = 60
max_age_seconds = 3600
max_stale_seconds = 600
unknown_kid_interval_seconds = 30
${extra}
[action_tokens]
issuer = "https://greenlight.example.com"
audience = "https://api.example.com"

[[routes]]
method = "GET"
path = "/docs/{id}"
action = "doc.read"
resource = { type = "Doc", id = "{id}" }
`;
  return [
    ['greenlight.toml', config],
    ['policy.cedar', '@id("read") permit (principal, action == Action::"doc.read", resource);\n'],
  ];
}

/** That bundle, loaded. */
function bundle(issuer, options) {
  return engine.loadBundle(bundleFiles(issuer, options));
}

/** A clock the test moves. */
function clock(start = 1_000_000) {
  const c = { t: start, now: () => c.t, advance: (s) => { c.t += s; } };
  return c;
}

/**
 * The verdict of `GET /docs/d1` with `token`, as `greenlight serve` gives
 * it: a denial naming an issuer fetches its keys again (rate-limited) and
 * decides once more. `'allow'`, or the denial's code, message and issuer.
 */
async function read(policy, keys, token) {
  const request = { method: 'GET', path: '/docs/d1', headers: [['authorization', `Bearer ${token}`]] };
  const d = await keys.retry(() => policy.evaluateHttp(request, NOW));
  if (d.verdict.kind === 'allow') return 'allow';
  const { kind, ...rest } = d.verdict;
  return rest;
}

const unknown = (message, issuer) => ({ code: 'token-unknown-key', message, issuer });

/** The message JSON.parse gives for `text` (serde's differs; the prefix is the Rust server's). */
function jsonError(text) {
  try {
    JSON.parse(text);
  } catch (e) {
    return e.message;
  }
  throw new Error('it parsed');
}

describe('discovery, then a rotation found through an unknown kid', () => {
  // Discovery finds the key set; a token signed by a key published later is
  // accepted at once (its unknown kid fetches the set again); a flood of
  // made-up kids costs at most one fetch per unknown_kid_interval; a key the
  // provider removed stops verifying once the set is refreshed.
  test('as provider_keys.rs discovery_then_rotation_through_an_unknown_kid', async () => {
    const k1 = new Key('k1');
    const k2 = new Key('k2');
    const idp = await new Provider({ keys: [k1.public] }).start();
    const iss = idp.base;
    const policy = bundle(iss);
    const c = clock();
    const logged = [];
    const keys = new KeySources(policy, { now: c.now, log: (m) => logged.push(m) });
    try {
      assert.deepEqual(keys.issuers, [iss]);
      assert.deepEqual(keys.health(), [{
        issuer: iss, source: 'discovery', jwks_uri: null, keys: false, kids: [],
        age_seconds: null, fresh_for_seconds: null, last_error: null,
      }]);
      await keys.fetchAll();
      assert.deepEqual(keys.health(), [{
        issuer: iss, source: 'discovery', jwks_uri: `${iss}/jwks`, keys: true, kids: ['k1'],
        age_seconds: 0, fresh_for_seconds: 60, last_error: null,
      }]);
      assert.deepEqual([idp.discoveries, idp.fetches], [1, 1]);
      assert.equal(await read(policy, keys, k1.token(iss, 'alice')), 'allow');

      // The provider publishes k2 and signs with it.
      idp.set({ keys: [k1.public, k2.public] });
      assert.equal(await read(policy, keys, k2.token(iss, 'alice')), 'allow');
      assert.equal(idp.fetches, 2, 'one fetch for the new kid');

      // Made-up kids: denied, and no fetch within the interval.
      for (let i = 0; i < 50; i++) {
        const kid = `made-up-${i}`;
        assert.deepEqual(await read(policy, keys, k1.token(iss, 'mallory', kid)), unknown(`no key with kid \`${kid}\``, iss));
      }
      assert.equal(idp.fetches, 2, 'a flood of unknown kids fetched nothing more');
      c.advance(31);
      for (let i = 0; i < 50; i++) {
        const kid = `again-${i}`;
        assert.deepEqual(await read(policy, keys, k1.token(iss, 'mallory', kid)), unknown(`no key with kid \`${kid}\``, iss));
      }
      assert.equal(idp.fetches, 3, 'one fetch per interval, however many kids');
      assert.equal(idp.discoveries, 1, 'the jwks_uri found is kept while fetches work');

      // k1 is removed; the background refresh (at 3/4 of 60 s) drops it.
      idp.set({ keys: [k2.public] });
      c.advance(44);
      await keys.tick();
      assert.equal(idp.fetches, 3, 'not due before 45 s');
      c.advance(2);
      await keys.tick();
      assert.equal(idp.fetches, 4);
      assert.deepEqual(keys.health()[0].kids, ['k2']);
      assert.deepEqual(await read(policy, keys, k1.token(iss, 'alice')), unknown('no key with kid `k1`', iss));
      assert.equal(await read(policy, keys, k2.token(iss, 'alice')), 'allow');
      assert.deepEqual(logged, []);
    } finally {
      keys.close();
      policy.close();
      idp.close();
    }
  });
});

test('requests that come while the unknown kid\'s fetch runs wait for it: one fetch, all allowed', async () => {
  const k1 = new Key('k1');
  const k2 = new Key('k2');
  const idp = await new Provider({ keys: [k1.public] }).start();
  const policy = bundle(idp.base);
  const keys = new KeySources(policy, { now: clock().now, log: () => {} });
  try {
    await keys.fetchAll();
    idp.set({ keys: [k1.public, k2.public] });
    const verdicts = await Promise.all(['a', 'b', 'c', 'd', 'e'].map((sub) => read(policy, keys, k2.token(idp.base, sub))));
    assert.deepEqual(verdicts, Array(5).fill('allow'));
    assert.equal(idp.fetches, 2);
  } finally {
    policy.close();
    idp.close();
  }
});

describe('failed fetches keep the last keys until they are too stale', () => {
  // Fetches that fail (a 500, 10 MB, not JSON, a private key, a shared
  // secret, a redirect) keep the last good keys serving; past the allowed
  // staleness the keys are withdrawn and tokens are denied saying why; a
  // working fetch brings them back.
  test('as provider_keys.rs failed_fetches_keep_the_last_keys_until_they_are_too_stale', async () => {
    const k1 = new Key('k1');
    const idp = await new Provider({ keys: [k1.public], cache: 'public, max-age=120' }).start();
    const iss = idp.base;
    const policy = bundle(iss);
    const c = clock();
    const logged = [];
    const keys = new KeySources(policy, { now: c.now, log: (m) => logged.push(m) });
    try {
      await keys.fetchAll();
      const token = k1.token(iss, 'alice');
      assert.equal(keys.health()[0].fresh_for_seconds, 120);

      const oct = { kty: 'oct', k: 'c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0LXNlY3JldA', kid: 's' };
      const jwksUrl = `${iss}/jwks`;
      const cases = [
        [{ status: 500 }, `GET ${jwksUrl}: status 500`],
        [{ huge: true }, `GET ${jwksUrl}: the body is larger than 524288 bytes`],
        [{ huge: true, chunked: true }, `GET ${jwksUrl}: the body is larger than 524288 bytes`],
        [{ garbage: true }, `GET ${jwksUrl}: not JSON: ${jsonError('<html>not a key set</html>')}`],
        [{ redirect: `${iss}/elsewhere` }, `GET ${jwksUrl}: status 302`],
        [{ keys: [k1.private] },
          `the key set was refused: jwks of \`${iss}\`: key 0: a key set holds public keys only, and this key has the private member \`d\``],
        [{ keys: [oct] },
          `the key set was refused: issuer \`${iss}\` does not allow HS256, so its keys cannot include a shared secret`],
      ];
      let fetches = idp.fetches;
      for (const [answer, error] of cases) {
        idp.set(answer);
        // Past the next fetch (the refresh at 90 s, then the backoff).
        c.advance(100);
        await keys.tick();
        assert.equal(idp.fetches, fetches + 1, error);
        fetches = idp.fetches;
        const h = keys.health()[0];
        assert.deepEqual([h.keys, h.kids, h.last_error], [true, ['k1'], error]);
        assert.equal(await read(policy, keys, token), 'allow', 'the last good keys serve');
        if (answer.chunked) assert.ok(idp.written < 10_000_000, `the reader stopped (${idp.written} bytes written)`);
      }
      assert.equal(logged.length, cases.length);
      assert.equal(logged[0], `fetching the keys of \`${iss}\` failed (due); the last good keys keep serving: GET ${jwksUrl}: status 500`);

      // 700 s after the fetch that worked; fresh for 120 s, stale for 600 s
      // more: at 721 s the keys go.
      c.advance(20);
      await keys.tick();
      assert.deepEqual(keys.health()[0].keys, true, 'not past 720 s yet');
      c.advance(1);
      await keys.tick();
      const last = `the key set was refused: issuer \`${iss}\` does not allow HS256, so its keys cannot include a shared secret`;
      const stale = `its keys are too stale: fetched 721 s ago, fresh for 120 s, and no fetch has worked since (${last})`;
      // After a failed fetch, discovery runs again (the provider may have moved its keys).
      assert.deepEqual(keys.health(), [{
        issuer: iss, source: 'discovery', jwks_uri: null, keys: false, kids: [],
        age_seconds: 721, fresh_for_seconds: 0, last_error: last,
      }]);
      assert.equal(keys.allLoaded, false);
      assert.equal(logged.at(-1), `withdrawing the keys of \`${iss}\`: ${stale}`);
      assert.deepEqual(await read(policy, keys, token), unknown(`no keys are loaded for issuer \`${iss}\`: ${stale}`, iss));
      // So does authenticate, naming the issuer.
      await assert.rejects(keys.retry(() => policy.authenticate(token, NOW)), (e) => {
        assert.ok(e instanceof DenialError, String(e));
        assert.deepEqual([e.code, e.denial, e.issuer], ['token-unknown-key', `no keys are loaded for issuer \`${iss}\`: ${stale}`, iss]);
        return true;
      });

      // The provider is fixed: the next fetch brings the keys back.
      idp.set({ keys: [k1.public] });
      c.advance(100);
      await keys.tick();
      assert.equal(keys.allLoaded, true);
      assert.deepEqual(keys.health()[0], {
        issuer: iss, source: 'discovery', jwks_uri: `${iss}/jwks`, keys: true, kids: ['k1'],
        age_seconds: 0, fresh_for_seconds: 60, last_error: null,
      });
      assert.equal(await read(policy, keys, token), 'allow');
      assert.equal((await keys.retry(() => policy.authenticate(token, NOW))).principal.subject, 'alice');
    } finally {
      keys.close();
      policy.close();
      idp.close();
    }
  });
});

describe('a request decided before another request fetched decides again', () => {
  // Request A decides with the old keys; request B's unknown kid fetches
  // the new ones before A asks: A is told to decide again, with no fetch of
  // its own, and within the interval nothing more is fetched.
  test('unknownKid(issuer, seen) sees a change made since seen', async () => {
    const k1 = new Key('k1');
    const k2 = new Key('k2');
    const idp = await new Provider({ keys: [k1.public] }).start();
    const iss = idp.base;
    const policy = bundle(iss);
    const keys = new KeySources(policy, { now: clock().now, log: () => {} });
    try {
      await keys.fetchAll();
      idp.set({ keys: [k1.public, k2.public] });
      const request = { method: 'GET', path: '/docs/d1', headers: [['authorization', `Bearer ${k2.token(iss, 'alice')}`]] };
      const seenByA = keys.changes;
      assert.equal(policy.evaluateHttp(request, NOW).verdict.code, 'token-unknown-key');
      assert.equal(await keys.unknownKid(iss, keys.changes), true, 'B fetches');
      assert.equal(idp.fetches, 2);
      assert.equal(await keys.unknownKid(iss, seenByA), true, 'A decides again');
      assert.equal(policy.evaluateHttp(request, NOW).verdict.kind, 'allow');
      assert.equal(await keys.unknownKid(iss, keys.changes), false, 'nothing new, within the interval');
      assert.equal(idp.fetches, 2, 'A and the last call fetched nothing');
    } finally {
      keys.close();
      policy.close();
      idp.close();
    }
  });
});

describe('discovery may not send the host elsewhere', () => {
  // A discovered jwks_uri on another host (or port) is refused, naming how
  // to trust it; an error a provider controls is kept to one short line.
  test('as provider_keys.rs a_discovered_jwks_uri_elsewhere_is_refused', async () => {
    const k1 = new Key('k1');
    const idp = await new Provider({ keys: [k1.public] }).start();
    const iss = idp.base;
    const port = iss.split(':').pop();
    idp.jwksUri = `http://localhost:${port}/jwks`;
    const policy = bundle(iss);
    const c = clock();
    const keys = new KeySources(policy, { now: c.now, log: () => {} });
    try {
      await keys.fetchAll();
      const error = `discovery failed: ${iss}/.well-known/openid-configuration: its jwks_uri \`http://localhost:${port}/jwks\` is not on the issuer's host; to trust it, name it as \`jwks_uri\` in the bundle; GET ${iss}/.well-known/oauth-authorization-server: status 404`;
      assert.equal(keys.health()[0].last_error, error);
      assert.equal(idp.fetches, 0, 'nothing fetched elsewhere');
      assert.deepEqual(await read(policy, keys, k1.token(iss, 'alice')),
        unknown(`no keys are loaded for issuer \`${iss}\`: fetching its keys failed: ${error}`, iss));
      idp.jwksUri = `${iss}/${'x'.repeat(5000)}`;
      c.advance(60);
      await keys.tick();
      const long = keys.health()[0].last_error;
      assert.equal([...long].length, 513, long);
      assert.ok(long.endsWith('…'));
    } finally {
      keys.close();
      policy.close();
      idp.close();
    }
  });
});

describe('an issuer without keys yet fails closed naming the error', () => {
  // A provider that never answered: its tokens are denied naming the fetch
  // error; the keys arrive with the first fetch that works.
  test('as provider_keys.rs an_issuer_without_keys_yet_fails_closed_naming_the_error', async () => {
    const k1 = new Key('k1');
    const idp = await new Provider({ status: 503 }).start();
    const iss = idp.base;
    const jwksUrl = `${iss}/jwks`;
    const policy = bundle(iss, { jwksUri: jwksUrl });
    const c = clock();
    const keys = new KeySources(policy, { now: c.now, log: () => {} });
    try {
      await keys.fetchAll();
      const error = `GET ${jwksUrl}: status 503`;
      assert.deepEqual(keys.health(), [{
        issuer: iss, source: 'jwks_uri', jwks_uri: jwksUrl, keys: false, kids: [],
        age_seconds: null, fresh_for_seconds: null, last_error: error,
      }]);
      assert.equal(idp.discoveries, 0, 'jwks_uri needs no discovery');
      const token = k1.token(iss, 'alice');
      assert.deepEqual(await read(policy, keys, token),
        unknown(`no keys are loaded for issuer \`${iss}\`: fetching its keys failed: ${error}`, iss));
      assert.equal(idp.fetches, 2, 'at start, and once for the token');
      idp.set({ keys: [k1.public] });
      // Past the backoff of the two failed fetches (4 s).
      c.advance(3);
      await keys.tick();
      assert.equal(idp.fetches, 2);
      c.advance(1);
      await keys.tick();
      assert.equal(idp.fetches, 3);
      assert.equal(keys.allLoaded, true);
      assert.equal(await read(policy, keys, token), 'allow');
    } finally {
      keys.close();
      policy.close();
      idp.close();
    }
  });

  test('a provider that does not answer in timeout_ms: timed out', async () => {
    const idp = await new Provider({ hang: true }).start();
    const jwksUrl = `${idp.base}/jwks`;
    const policy = bundle(idp.base, { jwksUri: jwksUrl, extra: 'timeout_ms = 200\nconnect_timeout_ms = 100\n' });
    const keys = new KeySources(policy, { log: () => {} });
    try {
      const started = Date.now();
      await keys.fetchAll();
      assert.ok(Date.now() - started < 5000);
      assert.equal(keys.health()[0].last_error, `GET ${jwksUrl}: timed out`);
    } finally {
      policy.close();
      idp.close();
    }
  });

  test('discovery: each metadata URL\'s failure, and an issuer that is not exactly the bundle\'s', async () => {
    const idp = await new Provider({ keys: [] }).start();
    const other = `${idp.base}/tenant`; // the provider's document names ${idp.base}
    const policy = bundle(other);
    const keys = new KeySources(policy, { log: () => {} });
    try {
      await keys.fetchAll();
      assert.equal(keys.health()[0].last_error,
        `discovery failed: GET ${other}/.well-known/openid-configuration: status 404; ` +
        `GET ${idp.base}/.well-known/oauth-authorization-server/tenant: status 404`);
      assert.deepEqual([idp.discoveries, idp.fetches], [0, 0]);
    } catch (e) {
      idp.close();
      throw e;
    } finally {
      policy.close();
    }
    // `${base}/` is not `${base}`, which the provider's document names.
    const slash = `${idp.base}/`;
    const policy2 = bundle(slash);
    const keys2 = new KeySources(policy2, { log: () => {} });
    try {
      await keys2.fetchAll();
      assert.deepEqual(keys2.health()[0], {
        issuer: slash, source: 'discovery', jwks_uri: null, keys: false, kids: [], age_seconds: null, fresh_for_seconds: null,
        last_error: `discovery failed: ${idp.base}/.well-known/openid-configuration: its \`issuer\` is not \`${slash}\`; ` +
          `GET ${idp.base}/.well-known/oauth-authorization-server: status 404`,
      });
      assert.deepEqual([idp.discoveries, idp.fetches], [1, 0]);
    } finally {
      policy2.close();
      idp.close();
    }
  });
});

test('only HTTPS, or plain HTTP to loopback when allowed, is fetched (the Rust messages)', () => {
  const s = { allow_http_loopback: false };
  assert.equal(checkUrl('https://idp.example.com/jwks', s).href, 'https://idp.example.com/jwks');
  assert.throws(() => checkUrl('http://idp.example.com/jwks', s), { message: '`http://idp.example.com/jwks` is not HTTPS' });
  assert.throws(() => checkUrl('http://127.0.0.1:8080/jwks', s), {
    message: '`http://127.0.0.1:8080/jwks` is plain HTTP: allowed for loopback only with `[key_fetch] allow_http_loopback = true`',
  });
  s.allow_http_loopback = true;
  for (const ok of ['http://127.0.0.1:8080/jwks', 'http://[::1]:8080/jwks', 'http://localhost/jwks', 'http://127.9.9.9/jwks']) {
    assert.equal(checkUrl(ok, s).href, ok);
  }
  for (const no of ['http://10.0.0.1/jwks', 'http://127.0.0.1.evil.com/jwks', 'http://localhost.evil.com/jwks', 'file:///etc/passwd']) {
    assert.throws(() => checkUrl(no, s), { message: `\`${no}\` is not HTTPS` });
  }

  // The engine refuses a bundle naming such a URL; KeySources checks again
  // what any policy describes, naming the issuer.
  const described = (keys) => ({
    info: {
      issuers: [{ issuer: 'https://idp.example', audience: 'a', keys }],
      key_fetch: { connect_timeout_ms: 2000, timeout_ms: 5000, max_bytes: 524288, min_age_seconds: 300, max_age_seconds: 86400,
        max_stale_seconds: 86400, unknown_kid_interval_seconds: 30, allow_http_loopback: false },
    },
  });
  assert.throws(() => new KeySources(described({ jwks_uri: 'http://127.0.0.1:1/jwks' })), {
    message: 'issuer `https://idp.example`: jwks_uri `http://127.0.0.1:1/jwks` is plain HTTP: allowed for loopback only with `[key_fetch] allow_http_loopback = true`',
  });
  assert.throws(() => new KeySources(described({ discovery: ['https://idp.example/.well-known/openid-configuration', 'http://idp.example/x'] })), {
    message: 'issuer `https://idp.example`: its metadata URL `http://idp.example/x` is not HTTPS',
  });
  assert.equal(new KeySources(described('bundle')).isEmpty, true);
});

test('freshness follows Cache-Control, then Expires less Date', () => {
  const h = (o) => new Headers(o);
  assert.equal(freshness(h({ 'cache-control': 'public, max-age=600' })), 600);
  assert.equal(freshness(h({ 'cache-control': 'max-age=600, no-cache' })), 0);
  assert.equal(freshness(h({ 'cache-control': 'no-store' })), 0);
  assert.equal(freshness(h({ date: 'Sat, 28 Nov 2026 10:00:00 GMT', expires: 'Sat, 28 Nov 2026 11:00:00 GMT' })), 3600);
  assert.equal(freshness(h({ 'cache-control': 'max-age=60', date: 'Sat, 28 Nov 2026 10:00:00 GMT', expires: 'Sat, 28 Nov 2026 11:00:00 GMT' })), 60);
  assert.equal(freshness(h({ 'cache-control': 'public', date: 'Sat, 28 Nov 2026 10:00:00 GMT', expires: 'Sat, 28 Nov 2026 10:10:00 GMT' })), 600);
  assert.equal(freshness(h({ date: 'Sat, 28 Nov 2026 11:00:00 GMT', expires: 'Sat, 28 Nov 2026 10:00:00 GMT' })), 0);
  assert.equal(freshness(h({ expires: '0' })), 0);
  assert.equal(freshness(h({})), null);
});

test('freshness is clamped to [min_age, max_age] and refetched at 3/4 of it', async () => {
  const k1 = new Key('k1');
  const idp = await new Provider({ keys: [k1.public], cache: 'max-age=100000' }).start();
  const policy = bundle(idp.base);
  const c = clock();
  const keys = new KeySources(policy, { now: c.now, log: () => {} });
  try {
    await keys.fetchAll();
    assert.equal(keys.health()[0].fresh_for_seconds, 3600);
    c.advance(2699);
    await keys.tick();
    assert.equal(idp.fetches, 1);
    idp.set({ keys: [k1.public], cache: 'no-store' });
    c.advance(1);
    await keys.tick();
    assert.equal(idp.fetches, 2);
    assert.equal(keys.health()[0].fresh_for_seconds, 60);
  } finally {
    policy.close();
    idp.close();
  }
});

test('refreshIssuer: a token-unknown-key deny or DenialError naming an issuer', () => {
  const deny = (v) => ({ verdict: { kind: 'deny', ...v }, reasons: [], policy_hash: 'x' });
  assert.equal(refreshIssuer(deny({ code: 'token-unknown-key', message: 'm', issuer: 'https://i' })), 'https://i');
  assert.equal(refreshIssuer(deny({ code: 'token-unknown-key', message: 'm' })), null);
  assert.equal(refreshIssuer(deny({ code: 'token-expired', message: 'm' })), null);
  assert.equal(refreshIssuer(new DenialError('token-unknown-key', 'm', 'https://i')), 'https://i');
  assert.equal(refreshIssuer(new DenialError('token-unknown-key', 'm')), null);
  assert.equal(refreshIssuer(null), null);
});

describe('the middleware owns the keys of fetched issuers', () => {
  test('fetched before serving; a rotation passes at once; close() stops the refresh', async () => {
    const k1 = new Key('k1');
    const k2 = new Key('k2');
    const idp = await new Provider({ keys: [k1.public] }).start();
    const iss = idp.base;
    const policy = bundle(iss);
    const service = createServer((req, res) => {
      res.statusCode = 404;
      res.end();
    });
    await new Promise((ok) => service.listen(0, '127.0.0.1', ok));
    const handler = withGreenlight({
      policy, serviceUrl: `http://127.0.0.1:${service.address().port}`, now: () => NOW, log: () => {},
    }, (req, res) => res.end(JSON.stringify(req.greenlight.verdict.principal.subject)));
    const app = createServer(handler);
    await new Promise((ok) => app.listen(0, '127.0.0.1', ok));
    const base = `http://127.0.0.1:${app.address().port}`;
    const get = async (token) => {
      const r = await fetch(`${base}/docs/d1`, { headers: { authorization: `Bearer ${token}` } });
      return [r.status, await r.json()];
    };
    try {
      await handler.ready;
      assert.deepEqual([idp.discoveries, idp.fetches], [1, 1]);
      assert.deepEqual(handler.keySources.health()[0].kids, ['k1']);
      assert.deepEqual(await get(k1.token(iss, 'alice')), [200, 'alice']);
      idp.set({ keys: [k1.public, k2.public] });
      assert.deepEqual(await get(k2.token(iss, 'bob')), [200, 'bob']);
      assert.equal(idp.fetches, 2);
      // A made-up kid right after: denied, no fetch (the interval).
      assert.deepEqual(await get(k1.token(iss, 'mallory', 'nope')), [401, {
        error: 'invalid_token', error_description: 'no key with kid `nope`', code: 'token-unknown-key',
      }]);
      assert.equal(idp.fetches, 2);
    } finally {
      handler.close();
      app.close();
      service.close();
      policy.close();
      idp.close();
    }
  });

  test('a reload keeps an unchanged issuer\'s fetched keys, and fetches a moved one', async () => {
    const k1 = new Key('k1');
    const idp = await new Provider({ keys: [k1.public] }).start();
    const iss = idp.base;
    // The bundle of `bundle(iss)` as a folder, for a LivePolicy.
    const dir = mkdtempSync(join(tmpdir(), 'greenlight-keys-'));
    const write = (files) => files.forEach(([name, text]) => writeFileSync(join(dir, name), text));
    const files = bundleFiles(iss);
    const permit = files.find(([name]) => name === 'policy.cedar')[1];
    write(files);
    const live = LivePolicy.load(engine, dir, { now: () => NOW });
    const handler = withGreenlight({ policy: live, serviceUrl: 'http://127.0.0.1:9', now: () => NOW, log: () => {} },
      (req, res) => res.end(JSON.stringify(req.greenlight.verdict.principal.subject)));
    const app = createServer(handler);
    await new Promise((ok) => app.listen(0, '127.0.0.1', ok));
    const base = `http://127.0.0.1:${app.address().port}`;
    const get = async (token) => {
      const r = await fetch(`${base}/docs/d1`, { headers: { authorization: `Bearer ${token}` } });
      return [r.status, await r.json()];
    };
    try {
      await handler.ready;
      assert.deepEqual(await get(k1.token(iss, 'alice')), [200, 'alice']);
      const fetched = idp.fetches;
      idp.set({ status: 503 });
      writeFileSync(join(dir, 'policy.cedar'), `${permit}@id("hidden") forbid (principal, action, resource == Doc::"d2");\n`);
      assert.equal(live.reload().outcome, 'swapped');
      assert.deepEqual(await get(k1.token(iss, 'alice')), [200, 'alice']);
      assert.equal(idp.fetches, fetched, 'no fetch for an unchanged key source');
      assert.deepEqual(handler.keySources.health()[0].kids, ['k1']);

      // Its keys at another URL: fetched, and refused while that fails.
      write(bundleFiles(iss, { jwksUri: `${iss}/jwks/v2` }).filter(([name]) => name === 'greenlight.toml'));
      assert.equal(live.reload().outcome, 'swapped');
      const [status, body] = await get(k1.token(iss, 'alice'));
      assert.equal(status, 401);
      assert.equal(body.code, 'token-unknown-key');
      assert.match(body.error_description, /fetching its keys failed/);
    } finally {
      handler.close();
      app.close();
      live.current.close();
      idp.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test('a bundle without fetched issuers makes no KeySources', async () => {
    const policy = engine.loadBundle([
      ['greenlight.toml', '[[issuers]]\nissuer = "https://idp.example"\naudience = "a"\nalgorithms = ["EdDSA"]\njwks = "k.json"\n\n' +
        '[action_tokens]\nissuer = "https://gl.example"\naudience = "a"\n'],
      ['k.json', JSON.stringify({ keys: [new Key('k').public] })],
      ['policy.cedar', ''],
    ]);
    try {
      const handler = withGreenlight({ policy, serviceUrl: 'http://127.0.0.1:1', log: () => {} }, () => {});
      await handler.ready;
      assert.equal(handler.keySources, null);
      handler.close();
    } finally {
      policy.close();
    }
  });
});
