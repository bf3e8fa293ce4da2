// What the component tells besides decisions (`authenticate`, `inspect`,
// `describe`, `stats`), and that the HTTP answer is the component's: a module that
// answers a deny with a pass-through gets a 503, never a pass-through, and
// the binding keeps no status table of its own.

import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { after, before, describe, test } from 'node:test';
import * as binding from '../../bindings/js/src/index.js';
import { BundleError, DenialError, Engine } from '../../bindings/js/src/index.js';
import { GEN_DIR } from '../../bindings/js/src/engine.js';
import { credentialFromWit } from '../../bindings/js/src/info.js';
import { InvalidOutput } from '../../bindings/js/src/decision.js';

const root = resolve(import.meta.dirname, '..', '..');
const JSON_HEADERS = [['content-type', 'application/json'], ['cache-control', 'no-store']];

/** The vector whose file name starts with `prefix`. */
function vector(prefix) {
  const name = readdirSync(join(root, 'tests/vectors')).find((n) => n.startsWith(prefix));
  return JSON.parse(readFileSync(join(root, 'tests/vectors', name), 'utf8'));
}
const tokenOf = (v) => v.request.http.headers.find(([k]) => k === 'authorization')[1].replace(/^Bearer /, '');
/** Asserts `f` throws a DenialError with exactly this code and message. */
function denies(f, code, message) {
  assert.throws(f, (e) => {
    assert.ok(e instanceof DenialError, String(e));
    assert.deepEqual([e.code, e.denial], [code, message]);
    return true;
  });
}

const ONCE = vector('058-'); // a `once` action token of tests/bundles/tokens: exp = now + 120
/** The `[key_fetch]` defaults (crates/types/src/bundle.rs, `KeyFetchSettings`). */
const KEY_FETCH_DEFAULTS = {
  connect_timeout_ms: 2000,
  timeout_ms: 5000,
  max_bytes: 524288,
  min_age_seconds: 300,
  max_age_seconds: 86400,
  max_stale_seconds: 86400,
  unknown_kid_interval_seconds: 30,
  allow_http_loopback: false,
};

const engine = await Engine.load();
after(() => engine.close());

describe('inspect', () => {
  let policy;
  before(() => {
    policy = engine.loadBundleDir(join(root, 'tests/bundles/tokens'));
  });
  after(() => policy.close());

  test('gives the claims enforcement checked', () => {
    const now = ONCE.now;
    assert.deepEqual(policy.inspect(tokenOf(ONCE), now), {
      principal: {
        entity_type: 'User',
        subject: 'bob',
        client_id: 'cli',
        scopes: ['things:write'],
        groups: [],
        roles: [],
        tenant: '',
        issuer: 'https://ed.example', // the person's, from sub_id
      },
      audience: 'https://api.test',
      token_id: 'at-1',
      issued_at: now - 10,
      expires_at: now + 120,
      digest: '7ZQSWV3eYaqJ6cMbAJfAsdgaWanaPxy71Q_2u9nT0ns',
      grant: 'once',
      approval_id: 'apr-1',
      approvers: [],
      authorization_details: null,
    });
    // The digest is the one the decision's action names.
    assert.equal(ONCE.expect.verdict.action.digest, '7ZQSWV3eYaqJ6cMbAJfAsdgaWanaPxy71Q_2u9nT0ns');
  });

  test('allows the leeway and refuses past it', () => {
    const exp = ONCE.now + 120;
    assert.equal(policy.inspect(tokenOf(ONCE), exp + 59).token_id, 'at-1');
    denies(() => policy.inspect(tokenOf(ONCE), exp + 60), 'token-expired', `the action token expired at ${exp}`);
  });

  test('refuses an access token', () => {
    const access = vector('043-'); // an EdDSA access token of the same bundle
    denies(() => policy.inspect(tokenOf(access), access.now), 'action-token-invalid', 'an access token is not an action token');
  });
});

describe('authenticate', () => {
  const bin = process.env.GREENLIGHT_BIN;
  /** `greenlight dev-token` for the demo bundle (its development IdP key). */
  const devToken = (...args) => {
    assert.ok(bin !== undefined && existsSync(bin), `GREENLIGHT_BIN must name the greenlight binary (got ${bin})`);
    return execFileSync(bin, ['dev-token', '--bundle', join(root, 'examples/bundle'), ...args], { encoding: 'utf8' }).trim();
  };
  const ISSUED = 1767225600;
  let policy;
  before(() => {
    policy = engine.loadBundleDir(join(root, 'examples/bundle'));
  });
  after(() => policy.close());

  test("gives an approver's credential for a token of the approvals app", () => {
    // The bundle's first issuer lists `approvals-app` in `approver_clients`;
    // dev-token sets `auth_time` to the issue time; the first issuer's groups count.
    const token = devToken('--sub', 'bob', '--client', 'approvals-app', '--claim', 'groups=["finance"]', '--now', String(ISSUED));
    assert.deepEqual(policy.authenticate(token, ISSUED + 10), {
      principal: {
        entity_type: 'User',
        subject: 'bob',
        client_id: 'approvals-app',
        scopes: [],
        groups: ['finance'],
        roles: [],
        tenant: '',
        issuer: 'https://idp.example.com',
      },
      expires_at: ISSUED + 3600,
      auth_time: ISSUED,
      approver: true,
    });
  });

  test('the same person through another client is not an approver', () => {
    const token = devToken('--sub', 'bob', '--client', 'shop-backend', '--claim', 'auth_time=null', '--now', String(ISSUED));
    const { principal, auth_time, approver } = policy.authenticate(token, ISSUED);
    assert.deepEqual([principal.client_id, auth_time, approver], ['shop-backend', null, false]);
  });

  test('a credential without a subject or issuer is refused, as the Rust host refuses it', () => {
    const wit = (who) => ({
      principal: { entityType: 'User', subject: 'bob', clientId: 'approvals-app', scopes: [], groups: [], roles: [], tenant: '', issuer: 'https://idp.example.com', attributes: [], ...who },
      expiresAt: 1n,
      authTime: undefined,
      approver: true,
    });
    assert.equal(credentialFromWit(wit({})).principal.subject, 'bob');
    for (const who of [{ subject: '' }, { issuer: '' }]) {
      assert.throws(() => credentialFromWit(wit(who)), (e) => e instanceof InvalidOutput && e.message === 'a credential without a subject or issuer');
    }
  });
});

describe('describe', () => {
  test('names what the demo bundle configures', () => {
    const policy = engine.loadBundleDir(join(root, 'examples/bundle'));
    try {
      assert.equal(policy.policyHash, vector('001-').expect.policy_hash);
      assert.deepEqual(policy.info, {
        policy_hash: vector('001-').expect.policy_hash,
        claims: { entity_type: 'User', scope: 'scope', groups: 'groups', roles: 'roles', tenant: 'tenant' },
        issuers: [{ issuer: 'https://idp.example.com', audience: 'https://api.example.com', keys: 'bundle',
                    algorithms: ['EdDSA', 'ES256', 'RS256'], required_typ: 'at+jwt' }],
        action_tokens: { issuer: 'https://greenlight.example.com', audience: 'https://api.example.com', ttl_seconds: 300, leeway_seconds: 60 },
        approvals: { default_ttl_seconds: 900, poll_interval_seconds: 5, confirm_max_age_seconds: 300 },
        development: true,
        key_fetch: KEY_FETCH_DEFAULTS,
      });
    } finally {
      policy.close();
    }
  });

  test('gives where each issuer\'s keys come from, and how hosts fetch them', () => {
    const policy = engine.loadBundleDir(join(root, 'tests/bundles/tokens'));
    try {
      const { issuers } = policy.info;
      assert.deepEqual(
        issuers.filter((i) => i.keys !== 'bundle'),
        [{ issuer: 'https://uri.example', audience: 'https://api.test', keys: { jwks_uri: 'https://uri.example/.well-known/jwks.json' },
           algorithms: ['EdDSA'], required_typ: null }],
      );
      // An issuer whose key set the bundle carries (`jwks = "ed.jwks.json"`).
      assert.deepEqual(issuers.find((i) => i.issuer === 'https://ed.example'), {
        issuer: 'https://ed.example',
        audience: 'https://api.test',
        keys: 'bundle',
        algorithms: ['EdDSA'],
        required_typ: 'at+jwt',
      });
      assert.deepEqual(
        issuers.filter((i) => i.keys === 'bundle').map((i) => i.issuer),
        ['https://ed.example', 'https://ec.example', 'https://rsa.example', 'https://hs.example', 'https://pairwise.example'],
      );
      assert.deepEqual(policy.info.key_fetch, KEY_FETCH_DEFAULTS);
      assert.deepEqual(Object.values(policy.info.key_fetch), [2000, 5000, 524288, 300, 86400, 86400, 30, false]);
      assert.equal(policy.info.development, false);
    } finally {
      policy.close();
    }
  });
});

test('describe gives the discovery URLs of an issuer and the bundle\'s key_fetch settings', () => {
  // Neither `jwks` nor `jwks_uri`: discovered from its metadata. `[key_fetch]` replaces the defaults it names.
  const extra = '\n[[issuers]]\nissuer = "https://login.example/tenant-1"\naudience = "https://api.test"\n' +
    'algorithms = ["EdDSA"]\n\n[key_fetch]\ntimeout_ms = 3000\nmax_stale_seconds = 3600\nallow_http_loopback = true\n';
  const files = binding.readBundleDir(join(root, 'tests/bundles/tokens'))
    .map(([n, t]) => [n, n === 'greenlight.toml' ? t.replace('\n[action_tokens]', `${extra}\n[action_tokens]`) : t]);
  const policy = engine.loadBundle(files);
  try {
    assert.deepEqual(policy.info.issuers.at(-1), {
      issuer: 'https://login.example/tenant-1',
      audience: 'https://api.test',
      keys: {
        discovery: [
          'https://login.example/tenant-1/.well-known/openid-configuration',
          'https://login.example/.well-known/oauth-authorization-server/tenant-1',
        ],
      },
      algorithms: ['EdDSA'],
      required_typ: null,
    });
    assert.deepEqual(policy.info.key_fetch, { ...KEY_FETCH_DEFAULTS, timeout_ms: 3000, max_stale_seconds: 3600, allow_http_loopback: true });
  } finally {
    policy.close();
  }
});

describe('withdrawKeys', () => {
  const URI = 'https://uri.example';
  const FETCHED = vector('074-'); // an EdDSA token of https://uri.example, allowed once its keys are set
  const ED_JWKS = readFileSync(join(root, 'tests/bundles/tokens/ed.jwks.json'), 'utf8');
  const WITHDRAWN = 'no keys are loaded for issuer `https://uri.example`: fetching its keys failed: boom';
  let policy;
  before(() => {
    assert.deepEqual(FETCHED.keys, [{ issuer: URI, jwks: 'tests/bundles/tokens/ed.jwks.json' }]);
    policy = engine.loadBundleDir(join(root, FETCHED.bundle));
  });
  after(() => policy.close());
  const readThing = () => policy.evaluateHttp(FETCHED.request.http, FETCHED.now);

  test('denies the issuer\'s tokens, naming it, until setKeys; in new workers too', () => {
    policy.setKeys(URI, ED_JWKS);
    assert.deepEqual(readThing(), FETCHED.expect);

    policy.withdrawKeys(URI, 'fetching its keys failed: boom');
    const d = readThing();
    assert.deepEqual(d.verdict, { kind: 'deny', code: 'token-unknown-key', message: WITHDRAWN, issuer: URI });
    assert.equal(
      JSON.stringify(d),
      '{"verdict":{"kind":"deny","code":"token-unknown-key","message":"no keys are loaded for issuer ' +
        '`https://uri.example`: fetching its keys failed: boom","issuer":"https://uri.example"},' +
        `"reasons":[],"policy_hash":"${policy.policyHash}"}`,
    );
    // So does authenticate, naming the issuer (one of the bundle's).
    assert.throws(() => policy.authenticate(tokenOf(FETCHED), FETCHED.now), (e) => {
      assert.ok(e instanceof DenialError, String(e));
      assert.deepEqual([e.code, e.denial, e.issuer], ['token-unknown-key', WITHDRAWN, URI]);
      return true;
    });
    // A new worker replays the withdrawal.
    policy.close();
    assert.deepEqual(readThing().verdict, { kind: 'deny', code: 'token-unknown-key', message: WITHDRAWN, issuer: URI });

    policy.setKeys(URI, ED_JWKS);
    assert.deepEqual(readThing(), FETCHED.expect);
    policy.close();
    assert.deepEqual(readThing(), FETCHED.expect);
  });

  test('a key set with a private member is refused and the old keys keep serving', () => {
    policy.setKeys(URI, ED_JWKS);
    const jwks = JSON.parse(ED_JWKS);
    jwks.keys[0].d = jwks.keys[0].x;
    assert.throws(() => policy.setKeys(URI, JSON.stringify(jwks)), (e) => {
      assert.ok(e instanceof BundleError, String(e));
      assert.deepEqual(e.problems, [{
        kind: 'invalid-keys',
        file: 'jwks of `https://uri.example`',
        line: null,
        column: null,
        message: 'key 0: a key set holds public keys only, and this key has the private member `d`',
      }]);
      assert.equal(e.other, null);
      return true;
    });
    assert.deepEqual(readThing(), FETCHED.expect);
    policy.close();
    assert.deepEqual(readThing(), FETCHED.expect);
  });

  test('an issuer the bundle lacks is refused and nothing changes', () => {
    policy.setKeys(URI, ED_JWKS);
    assert.throws(() => policy.withdrawKeys('https://nobody.example', 'gone'), (e) => {
      assert.ok(e instanceof BundleError, String(e));
      assert.deepEqual([e.message, e.other, e.problems], [
        'the bundle has no issuer `https://nobody.example`',
        'the bundle has no issuer `https://nobody.example`',
        [],
      ]);
      return true;
    });
    assert.deepEqual(readThing(), FETCHED.expect);
    policy.close();
    assert.deepEqual(readThing(), FETCHED.expect);
  });
});

test('stats count token checks and signature verifications', () => {
  const policy = engine.loadBundleDir(join(root, 'examples/bundle'));
  try {
    const read = vector('010-'); // alice reads a payment
    const before = policy.stats();
    for (let i = 0; i < 2; i++) assert.deepEqual(policy.evaluateHttp(read.request.http, read.now), read.expect);
    const after = policy.stats();
    // The same token twice: two checks, one signature verification (the
    // second came from the cache of verified tokens).
    assert.deepEqual(
      [after.token_checks - before.token_checks, after.signature_checks - before.signature_checks],
      [2, 1],
    );
  } finally {
    policy.close();
  }
});

describe('a module whose respond passes everything through', () => {
  const defaults = JSON.parse(readFileSync(join(GEN_DIR, 'default.json'), 'utf8'));
  const path = process.env.GREENLIGHT_HOSTILE_WASM ?? join(dirname(defaults.wasm), 'greenlight_test_hostile.wasm');
  let hostile;
  let policy;
  before(async () => {
    assert.ok(existsSync(path), `the hostile component is not at ${path} (set GREENLIGHT_HOSTILE_WASM)`);
    hostile = await Engine.load(path);
    policy = hostile.loadBundle([]);
  });
  after(() => {
    policy.close();
    hostile.close();
  });

  test('gets a 503 for a deny: the proof that the answer is the module\'s', () => {
    const d = policy.evaluateHttp({ method: 'GET', path: '/trap', headers: [] }, ONCE.now);
    assert.equal(d.verdict.code, 'engine-trap');
    assert.deepEqual(policy.respond(d, 'https://gl.example'), {
      status: 503,
      headers: JSON_HEADERS,
      body: {
        error: 'temporarily_unavailable',
        error_description: 'the policy module answered wrongly: status 0 with no body does not answer a deny `engine-trap`',
        code: 'engine-invalid-output',
      },
    });
  });

  test('gets a 503 for a challenge', () => {
    assert.deepEqual(policy.respond(vector('002-').expect, 'https://gl.example'), {
      status: 503,
      headers: JSON_HEADERS,
      body: {
        error: 'temporarily_unavailable',
        error_description: 'the policy module answered wrongly: status 0 with no body does not answer an approval-required',
        code: 'engine-invalid-output',
      },
    });
  });

  test('passes an allow through', () => {
    const d = policy.evaluateHttp({ method: 'GET', path: '/ok', headers: [] }, ONCE.now);
    assert.equal(d.verdict.kind, 'allow');
    assert.deepEqual(policy.respond(d, 'https://gl.example'), { status: 0, headers: [], body: null });
  });
});

test('the binding keeps no status table', () => {
  // No `respond` of its own is exported, and no source names an OAuth error
  // or builds a challenge: those come from the component only (the hostile
  // tests above prove the answers do).
  assert.equal(binding.respond, undefined);
  const dir = join(root, 'bindings/js/src');
  for (const name of readdirSync(dir).filter((n) => n.endsWith('.js'))) {
    const found = readFileSync(join(dir, name), 'utf8').match(/invalid_token|access_denied|invalid_request|insufficient_authorization|insufficient_user_authentication|Bearer error|acr_values=|\/oauth\//g);
    assert.equal(found, null, `${name} names ${found}`);
  }
});
