// The conformance vectors through greenlight.wasm from Node (jco): every
// tests/vectors/*.json must give the Rust decision JSON byte for byte (the
// text `Decision::to_json` writes, and what the Rust binary prints for the
// same request) and the HTTP answer of docs/gateway.md through the
// component's `gateway.respond` (a request is `http` for evaluateHttp,
// `access` for evaluate, or `vouched`, a `subject` the host vouches for and
// an `access` request, for evaluateAs); plus the fail-closed cases and the
// published JOSE vectors. Run with `node --test tests/js/` after
// `npm run build` in bindings/js (bindings/js/test.sh does both).

import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { BundleError, DenialError, Engine, readBundleDir } from '../../bindings/js/src/index.js';
import { GEN_DIR } from '../../bindings/js/src/engine.js';

const root = resolve(import.meta.dirname, '..', '..');
const SERVICE = 'https://greenlight.example.com';
/** The fewest vectors the suite accepts; fewer means files went missing. */
const MIN_VECTORS = 40;
const JSON_HEADERS = [['content-type', 'application/json'], ['cache-control', 'no-store']];
/**
 * The key order of each verdict kind in the Rust structs
 * (crates/types/src/decision.rs), which serde writes. Written out here: the
 * vector files list `authorization_details` before `action` in a challenge
 * (the generator builds them with `json!`, and the Rust runner compares
 * values, not text), so the file's order is not the Rust text's.
 */
const ORDER = {
  allow: ['kind', 'principal', 'action', 'approval_id', 'consume', 'forward_headers'],
  deny: ['kind', 'code', 'message', 'issuer'],
  'approval-required': ['kind', 'requester', 'action', 'authorization_details', 'obligation'],
  'step-up-required': ['kind', 'acr_values', 'max_age', 'message'],
};
/** Keys serde skips when absent (`skip_serializing_if`): a deny's `issuer`. */
const OPTIONAL = new Set(['issuer']);

/**
 * A principal with its `attributes` in the order serde writes them (a Rust
 * `BTreeMap`: by the names' UTF-8 bytes); the vector files list them in the
 * order the generator's `json!` gave them.
 */
function rustPrincipal(p) {
  if (p.attributes === undefined) return p;
  const sorted = Object.entries(p.attributes).sort(([a], [b]) => Buffer.compare(Buffer.from(a), Buffer.from(b)));
  return { ...p, attributes: Object.fromEntries(sorted) };
}

/** The compact text `Decision::to_json` writes for `expect`: its values, verdict keys in the Rust order. */
function rustText(expect) {
  const order = ORDER[expect.verdict.kind].filter((k) => Object.hasOwn(expect.verdict, k) || !OPTIONAL.has(k));
  assert.deepEqual(Object.keys(expect.verdict).sort(), [...order].sort(), `a ${expect.verdict.kind}'s keys`);
  const value = (k) => (k === 'principal' || k === 'requester' ? rustPrincipal(expect.verdict[k]) : expect.verdict[k]);
  return JSON.stringify({ ...expect, verdict: Object.fromEntries(order.map((k) => [k, value(k)])) });
}

const vectors = readdirSync(join(root, 'tests/vectors'))
  .filter((n) => n.endsWith('.json'))
  .sort()
  .map((n) => [n, JSON.parse(readFileSync(join(root, 'tests/vectors', n), 'utf8'))]);

const engine = await Engine.load();
/** The component checking every signature itself (no native primitive). */
const inGuest = await Engine.load(undefined, { nativeSignatures: false });
/** The vector whose file name (without its number) is `name`, e.g. `keys-set-by-host`. */
function named(name) {
  const found = vectors.filter(([n]) => n.replace(/^\d+-/, '') === `${name}.json`);
  assert.equal(found.length, 1, `exactly one vector named ${name}`);
  return found[0][1];
}

/** Decides a vector's request with the function its kind names. */
function decideWith(policy, v) {
  const { http, access, vouched } = v.request;
  if (http !== undefined) return policy.evaluateHttp(http, v.now);
  if (access !== undefined) return policy.evaluate(access, v.now);
  return policy.evaluateAs(vouched.subject, vouched.access, v.now);
}

/** Policies by bundle and key sets: vectors that share both share one. */
const policies = new Map();
after(() => {
  for (const p of policies.values()) p.close();
  engine.close();
  inGuest.close();
});

function policyFor(v) {
  const key = JSON.stringify([v.bundle, v.keys]);
  if (!policies.has(key)) {
    const policy = engine.loadBundleDir(join(root, v.bundle));
    for (const k of v.keys) policy.setKeys(k.issuer, readFileSync(join(root, k.jwks), 'utf8'));
    policies.set(key, policy);
  }
  return policies.get(key);
}

describe('conformance vectors', () => {
  test(`there are at least ${MIN_VECTORS}`, () => {
    assert.ok(vectors.length >= MIN_VECTORS, `only ${vectors.length} vectors in tests/vectors`);
  });

  test('every request kind has vectors, and only known kinds are used', () => {
    const kinds = new Set(vectors.flatMap(([, v]) => Object.keys(v.request)));
    assert.deepEqual([...kinds].sort(), ['access', 'http', 'vouched']);
    for (const [name, v] of vectors) assert.equal(Object.keys(v.request).length, 1, `${name} has one request`);
    for (const [name, v] of vectors.filter(([, v]) => v.request.vouched !== undefined)) {
      assert.deepEqual(Object.keys(v.request.vouched).sort(), ['access', 'subject'], name);
    }
  });

  for (const [name, v] of vectors) {
    test(`${name}: ${v.description}`, () => {
      const policy = policyFor(v);
      const decide = () => decideWith(policy, v);
      const decision = decide();
      assert.equal(JSON.stringify(decision), rustText(v.expect));
      assert.deepEqual(decision, v.expect);
      // The second answer comes from the instance's token cache.
      assert.equal(JSON.stringify(decide()), JSON.stringify(decision), 'the cached answer differs');
      // The HTTP answer is the component's (`gateway.respond`), checked by the binding.
      assert.deepEqual(policy.respond(decision, SERVICE), v.response);
    });
  }
});

describe('the decision JSON is what the Rust binary prints', () => {
  const bin = process.env.GREENLIGHT_BIN;
  /**
   * The vectors `greenlight check` can be given exactly: HTTP requests whose
   * `params` text is the compact JSON the binary writes back from a file.
   */
  const checkable = vectors.filter(([, v]) => {
    const http = v.request.http;
    if (http === undefined || http.params === null) return http !== undefined;
    try {
      return JSON.stringify(JSON.parse(http.params)) === http.params;
    } catch {
      return false;
    }
  });
  let tmp;
  before(() => {
    assert.ok(bin !== undefined && existsSync(bin), `GREENLIGHT_BIN must name the greenlight binary (got ${bin})`);
    tmp = mkdtempSync(join(tmpdir(), 'greenlight-check-'));
  });
  after(() => tmp && rmSync(tmp, { recursive: true, force: true }));

  test('most vectors can be checked', () => assert.ok(checkable.length >= 50, `only ${checkable.length}`));

  for (const [name, v] of checkable) {
    test(name, () => {
      const http = v.request.http;
      const file = join(tmp, `${name}`);
      writeFileSync(file, JSON.stringify({ ...http, params: http.params === null ? null : JSON.parse(http.params) }));
      const keys = v.keys.map((k) => `--keys=${k.issuer}=${join(root, k.jwks)}`);
      const out = execFileSync(bin, ['check', '--bundle', join(root, v.bundle), '--request', file, '--now', String(v.now), ...keys], {
        encoding: 'utf8',
      });
      // The binary pretty-prints; compact it keeping its key order.
      const rust = JSON.stringify(JSON.parse(out));
      assert.equal(JSON.stringify(decideWith(policyFor(v), v)), rust);
      assert.equal(rust, rustText(v.expect));
    });
  }
});

const b64 = (o) => Buffer.from(JSON.stringify(o)).toString('base64url');
const NOW = 1767225600;
const DEMO_HASH = 'cee629d384481bd8f5b52370832ea897bed868950245c74918f2fae758ee9932';
/** Alice's refund of 50 as an AuthZEN request without a token, for evaluateAs. */
const VOUCHED_REFUND = {
  token: '',
  action: 'payment.refund',
  resource_type: 'Payment',
  resource_id: 'pay_123',
  resource_properties: null,
  context: '{"amount":50,"currency":"EUR"}',
};
/** Alice as a trusted policy enforcement point would forward her. */
const ALICE_VOUCHED = {
  entity_type: 'User',
  subject: 'alice',
  client_id: 'api-gateway',
  scopes: ['payments:refund'],
  groups: [],
  roles: [],
  tenant: '',
  issuer: 'https://idp.example.com',
};

describe('fail closed', () => {
  /** Alice's access token of the demo bundle, from the refund vector. */
  const ALICE_TOKEN = named('demo-refund-50-allowed')
    .request.http.headers.find(([k]) => k === 'authorization')[1]
    .replace(/^Bearer /, '');
  const files = readBundleDir(join(root, 'examples/bundle'));
  let demo;
  before(() => {
    demo = engine.loadBundle(files);
  });
  after(() => demo.close());

  test('a bundle with a broken policy is refused with the problem located', () => {
    const broken = files.map(([n, c]) =>
      n === 'policy.cedar' ? [n, c.replace('action == Action::"payment.read", resource)', 'action == Action::"payment.read", resource')] : [n, c],
    );
    assert.throws(() => engine.loadBundle(broken), (e) => {
      assert.ok(e instanceof BundleError);
      assert.deepEqual(e.problems, [
        { kind: 'invalid-policy', file: 'policy.cedar', line: 5, column: 1, message: 'unexpected token `when`' },
      ]);
      assert.equal(e.message, 'the bundle has 1 problem(s):\npolicy.cedar:5:1: unexpected token `when`');
      return true;
    });
  });

  test('a bundle without policy.cedar is refused', () => {
    assert.throws(() => engine.loadBundle(files.filter(([n]) => n !== 'policy.cedar')), (e) => {
      assert.ok(e instanceof BundleError);
      assert.deepEqual(e.problems, [
        { kind: 'missing-file', file: 'policy.cedar', line: null, column: null, message: 'every bundle needs `policy.cedar`' },
      ]);
      return true;
    });
  });

  test('a refused key set is an error and the old keys keep serving', () => {
    const v = named('keys-set-by-host');
    const policy = engine.loadBundleDir(join(root, v.bundle));
    try {
      const [{ issuer, jwks }] = v.keys;
      policy.setKeys(issuer, readFileSync(join(root, jwks), 'utf8'));
      assert.throws(() => policy.setKeys(issuer, '{"keys": 5}'), (e) => {
        assert.ok(e instanceof BundleError);
        assert.deepEqual(e.problems, [
          { kind: 'invalid-keys', file: `jwks of \`${issuer}\``, line: null, column: null, message: 'a JWKS needs a `keys` array' },
        ]);
        return true;
      });
      assert.deepEqual(policy.evaluateHttp(v.request.http, v.now), v.expect);
    } finally {
      policy.close();
    }
  });

  test('a lone surrogate in a request is refused (request-invalid), never replaced by U+FFFD', () => {
    const policy = engine.loadBundle(files);
    try {
      const d = policy.evaluateHttp({ method: 'GET', path: '/payments/pay_1', headers: [['x-note', 'a\ud800b']] }, NOW);
      assert.deepEqual(d.verdict, {
        kind: 'deny',
        code: 'request-invalid',
        message: 'the request is not JSON: unexpected end of hex escape at line 1 column 90',
      });
      const e = policy.evaluate({ token: 't', action: 'payment.refund', resource_type: 'Payment', resource_id: 'pay\udc00', context: { amount: 50 } }, NOW);
      assert.deepEqual(e.verdict, {
        kind: 'deny',
        code: 'request-invalid',
        message: 'the request is not JSON: lone leading surrogate in hex escape at line 1 column 99',
      });
    } finally {
      policy.close();
    }
  });

  test('an unknown route is denied (403)', () => {
    const v = named('demo-refund-50-allowed');
    const d = demo.evaluateHttp({ ...v.request.http, method: 'GET', path: '/admin/users' }, NOW);
    assert.deepEqual(d.verdict, { kind: 'deny', code: 'route-not-found', message: 'no route for `GET /admin/users`' });
    assert.deepEqual(demo.respond(d, SERVICE), {
      status: 403,
      headers: JSON_HEADERS,
      body: { error: 'access_denied', error_description: 'no route for `GET /admin/users`', code: 'route-not-found' },
    });
  });

  test('a 9000-byte token is denied as too large', () => {
    const d = demo.evaluateHttp({ method: 'GET', path: '/payments/p1', headers: [['authorization', `Bearer ${'a'.repeat(9000)}`]] }, NOW);
    assert.equal(
      JSON.stringify(d),
      `{"verdict":{"kind":"deny","code":"token-too-large","message":"the token has 9000 bytes, more than the 8192 accepted"},"reasons":[],"policy_hash":"${DEMO_HASH}"}`,
    );
  });

  test('an alg none token is denied', () => {
    const claims = { iss: 'https://idp.example.com', aud: 'https://api.example.com', sub: 'mallory', exp: NOW + 60, iat: NOW, scope: 'payments:refund' };
    const token = `${b64({ alg: 'none', typ: 'at+jwt' })}.${b64(claims)}.`;
    const d = demo.evaluateHttp(
      { method: 'POST', path: '/payments/p1/refund', headers: [['authorization', `Bearer ${token}`]], params: '{"amount":5,"currency":"EUR"}' },
      NOW,
    );
    assert.deepEqual(d.verdict, { kind: 'deny', code: 'token-unsupported-algorithm', message: 'algorithm `none` is not supported' });
    assert.deepEqual(demo.respond(d, SERVICE).headers[0], [
      'www-authenticate',
      'Bearer error="invalid_token", error_description="algorithm `none` is not supported"',
    ]);
  });

  test('evaluateAs refuses a request that carries a token', () => {
    const d = demo.evaluateAs(ALICE_VOUCHED, { ...VOUCHED_REFUND, token: ALICE_TOKEN }, NOW);
    assert.deepEqual(d, {
      verdict: { kind: 'deny', code: 'request-invalid', message: 'a request for a vouched subject carries no token' },
      reasons: [],
      policy_hash: DEMO_HASH,
    });
    assert.deepEqual(demo.respond(d, SERVICE), {
      status: 400,
      headers: JSON_HEADERS,
      body: { error: 'invalid_request', error_description: 'a request for a vouched subject carries no token', code: 'request-invalid' },
    });
  });

  test('evaluateAs decides for an authenticated principal as evaluate does for its token', () => {
    const vouched = demo.evaluateAs(demo.authenticate(ALICE_TOKEN, NOW).principal, VOUCHED_REFUND, NOW);
    assert.deepEqual(vouched, demo.evaluate({ ...VOUCHED_REFUND, token: ALICE_TOKEN }, NOW));
    assert.equal(vouched.verdict.principal.subject, 'alice');
    assert.deepEqual(vouched.reasons, ['refund-small']);
  });

  test('evaluateAs refuses a subject of the wrong shape', () => {
    assert.throws(() => demo.evaluateAs({ ...ALICE_VOUCHED, scopes: 'payments:refund' }, VOUCHED_REFUND, NOW), TypeError);
    assert.throws(() => demo.evaluateAs({ ...ALICE_VOUCHED, subject: undefined }, VOUCHED_REFUND, NOW), TypeError);
    assert.throws(() => demo.evaluateAs(null, VOUCHED_REFUND, NOW), TypeError);
  });

  test('authenticate gives the credential of the requesting app\'s token', () => {
    // Vector 010's token: alice through client shop-backend, which is not
    // meant for approving, and which does not say when she signed in.
    const read = named('demo-payment-read-allowed');
    const token = read.request.http.headers.find(([k]) => k === 'authorization')[1].replace(/^Bearer /, '');
    assert.deepEqual(demo.authenticate(token, read.now), {
      principal: {
        entity_type: 'User',
        subject: 'alice',
        client_id: 'shop-backend',
        scopes: ['payments:read', 'payments:refund', 'files:write'],
        groups: [],
        roles: [],
        tenant: '',
        issuer: 'https://idp.example.com',
      },
      expires_at: read.now + 3600,
      auth_time: null,
      approver: false,
    });
    assert.throws(() => demo.authenticate(token, read.now + 86400), (e) => {
      assert.ok(e instanceof DenialError);
      assert.deepEqual([e.code, e.denial], ['token-expired', 'the token expired at 1767229200']);
      return true;
    });
  });

  test('authenticate refuses a malformed token with its code', () => {
    assert.throws(() => demo.authenticate('x.y.z', NOW), (e) => {
      assert.ok(e instanceof DenialError);
      assert.equal(e.code, 'token-malformed');
      assert.equal(e.denial, 'the header is not base64url');
      return true;
    });
  });
});

describe('a hostile policy module', () => {
  const defaults = JSON.parse(readFileSync(join(GEN_DIR, 'default.json'), 'utf8'));
  const path = process.env.GREENLIGHT_HOSTILE_WASM ?? join(dirname(defaults.wasm), 'greenlight_test_hostile.wasm');
  let hostile;
  let policy;
  before(async () => {
    assert.ok(existsSync(path), `the hostile component is not at ${path} (set GREENLIGHT_HOSTILE_WASM)`);
    hostile = await Engine.load(path);
    policy = hostile.loadBundle([]);
  });
  after(() => policy.close());

  const ask = (path) => policy.evaluateHttp({ method: 'GET', path, headers: [] }, NOW);
  /**
   * The allow the hostile module gives for any request it does not
   * misbehave on. Its `decide-json` names the call it was given in
   * `reasons`: the proof that every decision crosses as one JSON text.
   */
  const HOSTILE_ALLOW = {
    verdict: {
      kind: 'allow',
      principal: { entity_type: 'User', subject: 'hostile', client_id: '', scopes: [], groups: [], roles: [], tenant: '', issuer: 'hostile' },
      action: { name: 'hostile', resource_type: 'Hostile', resource_id: 'hostile', params: {}, digest: 'erF0EfDnttDOVv9WNrqnsf34DPlnUOKXRSZuQUe9npY' },
      approval_id: null,
      consume: null,
      forward_headers: [],
    },
    reasons: ['http'],
    policy_hash: 'hostile',
  };
  const served = () => assert.deepEqual(ask('/ok'), HOSTILE_ALLOW);
  /** The hostile allow for a call of `kind` whose principal's subject is `subject`. */
  const hostileAllow = (kind, subject = 'hostile') => ({
    ...HOSTILE_ALLOW,
    verdict: { ...HOSTILE_ALLOW.verdict, principal: { ...HOSTILE_ALLOW.verdict.principal, subject } },
    reasons: [kind],
  });

  test('each call reaches the module as its own kind of decide-json call', () => {
    assert.deepEqual(policy.evaluateAs(ALICE_VOUCHED, VOUCHED_REFUND, NOW), hostileAllow('vouched', 'alice'));
    assert.deepEqual(policy.evaluate({ ...VOUCHED_REFUND, token: 't' }, NOW), hostileAllow('access'));
    served();
  });

  test("a malformed decide-json answer is a deny (engine-invalid-output), each with its reason", () => {
    const malformed = (why) => ({
      verdict: { kind: 'deny', code: 'engine-invalid-output', message: `the policy module returned a malformed decision: ${why}` },
      reasons: [],
      policy_hash: 'hostile',
    });
    const cases = {
      '/not-json': 'the decision is not JSON',
      '/not-a-decision': 'the allowance lacks `principal`',
      '/deep': 'it nests more than 127 arrays or objects',
      '/nan': 'the decision is not JSON',
      '/huge-number': 'the number 1e400 is beyond a double',
      '/surrogate': 'a string holds a lone surrogate',
      '/big-params': "the action's params has 70010 bytes",
      // A deny, then an allow under the same name: JSON.parse would keep the allow.
      '/twice': 'the decision names a member twice in one object',
      // Refused before it is parsed: no host reads more than 1 MiB.
      '/huge-decision': 'the decision is longer than 1048576 bytes',
    };
    for (const [path, why] of Object.entries(cases)) {
      assert.deepEqual(ask(path), malformed(why), path);
      // The module answered; its instance keeps serving.
      served();
    }
    // An unknown member named by 40,000 emoji: the reason is cut at 64 KiB, between two of them.
    const start = 'the policy module returned a malformed decision: the decision has an unknown field `';
    assert.deepEqual(ask('/long-name').verdict.message, start + '😀'.repeat(Math.floor((64 * 1024 - start.length) / 4)));
    served();
  });

  test('a trap is a deny (engine-trap) and the next call gets a fresh instance', () => {
    served();
    const d = ask('/trap');
    assert.equal(d.verdict.kind, 'deny');
    assert.equal(d.verdict.code, 'engine-trap');
    assert.equal(d.verdict.message, 'the policy module trapped (wasm trap: wasm `unreachable` instruction executed)');
    served();
  });

  test('an endless loop is stopped at the time budget (engine-timeout)', () => {
    // The verdict is the proof: an endless loop returns only because the
    // budget stopped it. (No timing assertion: these machines are shared.)
    assert.deepEqual(ask('/loop').verdict, {
      kind: 'deny',
      code: 'engine-timeout',
      message: 'the policy module ran past its time budget',
    });
    served();
  });

  test('unbounded allocation is stopped at the memory cap (engine-memory-exceeded)', () => {
    assert.deepEqual(ask('/alloc').verdict, {
      kind: 'deny',
      code: 'engine-memory-exceeded',
      message: 'the policy module ran past its memory cap of 67108864 bytes',
    });
    served();
  });
});

describe('signatures checked by node:crypto or by the module: the same decisions', () => {
  for (const [name, v] of vectors) {
    test(name, () => {
      const policy = inGuest.loadBundleDir(join(root, v.bundle));
      try {
        for (const k of v.keys) policy.setKeys(k.issuer, readFileSync(join(root, k.jwks), 'utf8'));
        assert.equal(JSON.stringify(decideWith(policy, v)), rustText(v.expect));
      } finally {
        policy.close();
      }
    });
  }

  test('both ways were taken', () => {
    // The conformance vectors above ran through `engine` first.
    assert.ok(engine.nativeSignatureChecks >= 10, `only ${engine.nativeSignatureChecks} native checks`);
    assert.equal(inGuest.nativeSignatureChecks, 0);
  });
});

describe('published JOSE vectors (RFC 7515, 7520, 8037)', () => {
  const dir = join(root, 'tests', 'jose');
  const jose = readdirSync(dir)
    .filter((n) => n.endsWith('.json'))
    .sort()
    .map((n) => [n, JSON.parse(readFileSync(join(dir, n), 'utf8'))]);

  test('all ten are there', () => assert.equal(jose.length, 10));

  for (const [name, v, eng] of jose.flatMap(([n, v]) => [[`${n} (node:crypto)`, v, engine], [`${n} (in the module)`, v, inGuest]])) {
    test(name, () => {
      const jwk = JSON.stringify(v.jwk);
      const refused = (token, code, message) =>
        assert.throws(() => eng.verifyCompact(token, jwk), (e) => {
          assert.ok(e instanceof DenialError);
          assert.equal(e.code, code);
          if (message !== undefined) assert.equal(e.denial, message);
          return true;
        });
      if (v.alg === 'ES512' || v.alg === 'none') {
        refused(v.token, 'token-unsupported-algorithm', `algorithm \`${v.alg}\` is not supported`);
        return;
      }
      assert.equal(Buffer.from(eng.verifyCompact(v.token, jwk)).toString('utf8'), v.payload);
      const dot = v.token.lastIndexOf('.');
      const sig = v.token.slice(dot + 1);
      refused(`${v.token.slice(0, dot + 1)}${sig[0] === 'A' ? 'B' : 'A'}${sig.slice(1)}`, 'token-bad-signature');
    });
  }
});
