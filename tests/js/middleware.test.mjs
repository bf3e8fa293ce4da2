// The Node middleware over real HTTP, against a stand-in approval service:
// what reaches the handler on allow, the exact answers for the rest (the
// component's), and the decisions that go to the service (one-time and
// window action tokens, window grants, read from typed fields: the service
// decides; unreachable or nonsense answers deny) and those that do not. The
// clock is pinned to the vectors' `now` so their tokens are valid. The
// service URL is checked at construction (https:, or http: on loopback
// only) and no redirect from the service is followed. The real service is
// exercised in examples/node-gateway. Gateways on tests/bundles/tokens pass
// `keySources: false` (the host sets its keys) where they are not about
// https://uri.example's fetched keys; keys.test.mjs tests fetching.

import assert from 'node:assert/strict';
import { cpSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, unlinkSync, writeFileSync } from 'node:fs';
import { createServer, request as httpRequest } from 'node:http';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { denied, Engine, greenlight, KeySources, needsService, withGreenlight } from '../../bindings/js/src/index.js';
import { GEN_DIR } from '../../bindings/js/src/engine.js';

const root = resolve(import.meta.dirname, '..', '..');
const NOW = 1767225600;

/** The vector whose file name starts with `prefix`. */
function vector(prefix) {
  const name = readdirSync(join(root, 'tests/vectors')).find((n) => n.startsWith(prefix));
  return JSON.parse(readFileSync(join(root, 'tests/vectors', name), 'utf8'));
}

const bearer = (v) => v.request.http.headers.find(([k]) => k === 'authorization')[1];

/**
 * The allow the service gives for a challenge it holds a window grant for
 * (the Rust `Allowance::new(requester, action, Some(id), None)`).
 */
function granted(challenge, approvalId) {
  const v = challenge.verdict;
  return {
    kind: 'allow',
    principal: v.requester,
    action: v.action,
    approval_id: approvalId,
    consume: null,
    forward_headers: [['x-greenlight-subject', v.requester.subject], ['x-greenlight-issuer', v.requester.issuer], ['x-greenlight-action', v.action.name], ['x-greenlight-approval', approvalId]],
  };
}

/** Listens on a free loopback port; resolves to the base URL. */
function listen(server) {
  return new Promise((ok) => server.listen(0, '127.0.0.1', () => ok(`http://127.0.0.1:${server.address().port}`)));
}

/**
 * A stand-in for `greenlight serve`: serves `jwks` and answers /v1/check
 * with `check(requestJson)` -> [status, body text].
 */
class FakeService {
  jwksFetches = 0;
  checks = [];
  check = () => [500, ''];
  constructor(jwks) {
    this.jwks = jwks;
    this.server = createServer(async (req, res) => {
      let body = '';
      for await (const chunk of req) body += chunk;
      if (req.url === '/.well-known/jwks.json') {
        this.jwksFetches++;
        res.setHeader('content-type', 'application/json');
        res.end(this.jwks);
      } else if (req.url === '/v1/check' && req.method === 'POST') {
        this.checks.push(JSON.parse(body));
        const [status, text] = this.check(JSON.parse(body));
        res.statusCode = status;
        res.setHeader('content-type', 'application/json');
        res.end(text);
      } else {
        res.statusCode = 404;
        res.end();
      }
    });
  }
}

/** The upstream handler: echoes what it was given. */
function echo(req, res) {
  res.setHeader('content-type', 'application/json');
  res.end(JSON.stringify({ headers: req.headers, body: req.body ?? null, decision: req.greenlight }));
}

async function call(base, { method = 'GET', path, headers = {}, body }) {
  const r = await fetch(`${base}${path}`, { method, headers, body });
  return { status: r.status, headers: r.headers, body: await r.json() };
}

/**
 * As `call`, with node:http, whose headers go on the wire as given: an
 * array value is that header repeated, in order (fetch would join them).
 */
function rawCall(base, { method = 'GET', path, headers = {}, body }) {
  return new Promise((ok, fail) => {
    const req = httpRequest(`${base}${path}`, { method, headers }, async (res) => {
      let text = '';
      for await (const chunk of res) text += chunk;
      ok({ status: res.statusCode, headers: new Headers(res.headers), body: JSON.parse(text) });
    });
    req.on('error', fail);
    req.end(body);
  });
}

const engine = await Engine.load();
after(() => engine.close());

const GREENLIGHT_JWKS = readFileSync(join(root, 'tests/bundles/tokens/greenlight.jwks.json'), 'utf8');

describe('the middleware in front of the demo bundle', () => {
  const service = new FakeService(GREENLIGHT_JWKS);
  const logged = [];
  let policy;
  let app;
  let serviceUrl;
  let base;
  before(async () => {
    serviceUrl = await listen(service.server);
    policy = engine.loadBundleDir(join(root, 'examples/bundle'));
    const handler = withGreenlight({ policy, serviceUrl, now: () => NOW, log: (m) => logged.push(m), maxBodyBytes: 1000, keysRefreshMs: 60_000 }, echo);
    await handler.ready;
    app = createServer(handler);
    base = await listen(app);
  });
  after(() => {
    app.close();
    service.server.close();
    policy.close();
  });

  test('the service keys are fetched at start', () => {
    assert.equal(service.jwksFetches, 1);
    assert.deepEqual(logged, []);
  });

  test('an allowed refund reaches the handler with the body and only the decision forward headers', async () => {
    const v = vector('001-');
    const r = await call(base, {
      method: 'POST',
      path: v.request.http.path,
      headers: {
        authorization: bearer(v),
        'content-type': 'application/json',
        'x-greenlight-subject': 'mallory',
        'X-Greenlight-Approval': 'forged',
        'x-greenlight_subject': 'mallory',
      },
      body: v.request.http.params,
    });
    assert.equal(r.status, 200);
    assert.equal(r.body.headers['x-greenlight-subject'], 'alice');
    assert.equal(r.body.headers['x-greenlight-action'], 'payment.refund');
    assert.equal(r.body.headers['x-greenlight-approval'], undefined);
    // It would reach a CGI-style stack as X_GREENLIGHT_SUBJECT.
    assert.equal(r.body.headers['x-greenlight_subject'], undefined);
    assert.deepEqual(r.body.body, { amount: 50, currency: 'EUR' });
    assert.deepEqual(r.body.decision, v.expect);
  });

  test('a refund of 500 gets the challenge of docs/gateway.md', async () => {
    const v = vector('002-');
    const r = await call(base, {
      method: 'POST',
      path: v.request.http.path,
      headers: { authorization: bearer(v), 'content-type': 'application/json' },
      body: v.request.http.params,
    });
    const expected = policy.respond(v.expect, serviceUrl);
    assert.equal(r.status, 401);
    assert.equal(r.headers.get('www-authenticate'), 'Bearer error="insufficient_authorization", error_description="approval required"');
    assert.equal(r.headers.get('content-type'), 'application/json');
    assert.equal(r.headers.get('cache-control'), 'no-store');
    assert.deepEqual(r.body, expected.body);
    assert.equal(r.body.ask.backchannel_authentication_endpoint, `${serviceUrl}/oauth/bc-authorize`);
  });

  test('an unknown route is 403 and never reaches the handler', async () => {
    const r = await call(base, { path: '/admin?x=1', headers: { authorization: bearer(vector('001-')) } });
    assert.equal(r.status, 403);
    assert.deepEqual(r.body, { error: 'access_denied', error_description: 'no route for `GET /admin`', code: 'route-not-found' });
  });

  test('no token is 401 with a bare Bearer challenge', async () => {
    const r = await call(base, { path: '/payments/pay_123' });
    assert.equal(r.status, 401);
    assert.equal(r.headers.get('www-authenticate'), 'Bearer');
    assert.deepEqual(r.body, { error: 'invalid_token', error_description: 'no bearer token was presented', code: 'token-missing' });
  });

  test('a token naming an unknown key right after a fetch does not fetch again', async () => {
    const v = vector('033-');
    const r = await call(base, { path: v.request.http.path, headers: { authorization: bearer(v) } });
    assert.equal(r.status, 401);
    assert.deepEqual(r.body, { error: 'invalid_token', error_description: 'no key with kid `rotated-away`', code: 'token-unknown-key' });
    assert.equal(service.jwksFetches, 1);
  });

  test('a body that is not JSON is refused on a route that reads it', async () => {
    const v = vector('001-');
    const r = await call(base, {
      method: 'POST',
      path: v.request.http.path,
      headers: { authorization: bearer(v), 'content-type': 'application/json' },
      body: 'amount=50',
    });
    assert.equal(r.status, 400);
    assert.equal(r.body.code, 'request-invalid');
    assert.equal(r.body.error, 'invalid_request');
  });

  test('a body over the limit is refused', async () => {
    const v = vector('001-');
    const r = await call(base, {
      method: 'POST',
      path: v.request.http.path,
      headers: { authorization: bearer(v), 'content-type': 'application/json' },
      body: JSON.stringify({ amount: 50, currency: 'EUR', pad: 'x'.repeat(1000) }),
    });
    assert.equal(r.status, 400);
    assert.deepEqual(r.body, { error: 'invalid_request', error_description: 'the request body has more than 1000 bytes', code: 'request-invalid' });
  });
});

describe('a one-time action token goes to the approval service', () => {
  const v = vector('058-'); // POST /things/t-1/delete with a `once` action token
  const service = new FakeService(GREENLIGHT_JWKS);
  const logged = [];
  let policy;
  let app;
  let serviceUrl;
  let base;
  before(async () => {
    serviceUrl = await listen(service.server);
    policy = engine.loadBundleDir(join(root, v.bundle));
    const handler = withGreenlight({ policy, serviceUrl, now: () => NOW, log: (m) => logged.push(m), serviceTimeoutMs: 2000, keySources: false }, echo);
    await handler.ready;
    app = createServer(handler);
    base = await listen(app);
  });
  after(() => {
    app.close();
    policy.close();
  });

  const act = () => call(base, { method: 'POST', path: '/things/t-1/delete', headers: { authorization: bearer(v) } });

  test('the service consumes it and its allow lets the request through', async () => {
    service.check = () => [200, JSON.stringify(v.expect)];
    const r = await act();
    assert.equal(r.status, 200);
    assert.equal(r.body.headers['x-greenlight-approval'], 'apr-1');
    const sent = service.checks.at(-1);
    assert.deepEqual([sent.method, sent.path, sent.query, sent.params], ['POST', '/things/t-1/delete', '', null]);
    assert.ok(Array.isArray(sent.headers), 'headers go as [name, value] pairs');
    assert.deepEqual(sent.headers.filter(([k]) => k === 'authorization'), [['authorization', bearer(v)]]);
  });

  test('a replay the service reports is 401 invalid_token', async () => {
    const replayed = {
      verdict: { kind: 'deny', code: 'action-token-replayed', message: 'action token `at-1` was already used' },
      reasons: [],
      policy_hash: v.expect.policy_hash,
    };
    service.check = () => [200, JSON.stringify(replayed)];
    const r = await act();
    assert.equal(r.status, 401);
    assert.equal(r.headers.get('www-authenticate'), 'Bearer error="invalid_token", error_description="action token `at-1` was already used"');
    assert.deepEqual(r.body, { error: 'invalid_token', error_description: 'action token `at-1` was already used', code: 'action-token-replayed' });
  });

  test('an answer that is not a decision denies (engine-unavailable)', async () => {
    service.check = () => [200, '{"verdict":{"kind":"allow","subject":"bob"},"reasons":[],"policy_hash":"x"}'];
    const r = await act();
    assert.equal(r.status, 503);
    assert.deepEqual(r.body, {
      error: 'temporarily_unavailable',
      error_description: "the approval service's answer is not a decision: the allowance has an unknown field `subject`",
      code: 'engine-unavailable',
    });
  });

  test('an error status denies (engine-unavailable)', async () => {
    service.check = () => [500, '{"error":"server_error"}'];
    const r = await act();
    assert.equal(r.status, 503);
    assert.deepEqual(r.body, {
      error: 'temporarily_unavailable',
      error_description: 'the approval service answered with status 500',
      code: 'engine-unavailable',
    });
  });

  test('an unreachable service denies (engine-unavailable)', async () => {
    await new Promise((ok) => service.server.close(ok));
    const r = await act();
    assert.equal(r.status, 503);
    assert.deepEqual(r.body, {
      error: 'temporarily_unavailable',
      error_description: `the approval service at ${serviceUrl} cannot be reached`,
      code: 'engine-unavailable',
    });
    assert.match(logged.at(-1), /^the approval service cannot be reached: /);
  });
});

describe('window action tokens and window grants go to the approval service', () => {
  const windowToken = vector('066-'); // POST /things/t-1/share with a `window` action token
  const windowRequired = vector('065-'); // the same share with bob's token: approval-required, grant `window`
  const onceRequired = vector('057-'); // POST /things/t-1/delete with bob's token: approval-required, grant `once`
  const service = new FakeService(GREENLIGHT_JWKS);
  const logged = [];
  let policy;
  let app;
  let serviceUrl;
  let base;
  before(async () => {
    serviceUrl = await listen(service.server);
    policy = engine.loadBundleDir(join(root, windowToken.bundle));
    const handler = withGreenlight({ policy, serviceUrl, now: () => NOW, log: (m) => logged.push(m), serviceTimeoutMs: 2000, keySources: false }, echo);
    await handler.ready;
    app = createServer(handler);
    base = await listen(app);
  });
  after(() => {
    app.close();
    service.server.close();
    policy.close();
  });

  const share = (v, headers = {}) =>
    call(base, {
      method: 'POST',
      path: '/things/t-1/share',
      headers: { authorization: bearer(v), 'content-type': 'application/json', ...headers },
      body: v.request.http.params,
    });
  const answer = (verdict) => JSON.stringify({ verdict, reasons: ['thing-share'], policy_hash: windowToken.expect.policy_hash });

  test('a window action token goes to the service, and a revoked approval is 401 invalid_token', async () => {
    service.check = () => [200, answer({ kind: 'deny', code: 'action-token-replayed', message: 'approval `apr-1` was revoked' })];
    const before = service.checks.length;
    const r = await share(windowToken);
    assert.equal(service.checks.length, before + 1);
    const sent = service.checks.at(-1);
    assert.deepEqual([sent.method, sent.path, sent.query, sent.params], ['POST', '/things/t-1/share', '', { with: 'carol' }]);
    assert.equal(r.status, 401);
    assert.equal(r.headers.get('www-authenticate'), 'Bearer error="invalid_token", error_description="approval `apr-1` was revoked"');
    assert.equal(r.headers.get('content-type'), 'application/json');
    assert.equal(r.headers.get('cache-control'), 'no-store');
    assert.deepEqual(r.body, { error: 'invalid_token', error_description: 'approval `apr-1` was revoked', code: 'action-token-replayed' });
  });

  test('a window action token the service allows reaches the handler', async () => {
    service.check = () => [200, JSON.stringify(windowToken.expect)];
    const before = service.checks.length;
    const r = await share(windowToken);
    assert.equal(service.checks.length, before + 1);
    assert.equal(r.status, 200);
    assert.equal(r.body.headers['x-greenlight-approval'], 'apr-1');
    assert.deepEqual(r.body.body, { with: 'carol' });
    assert.deepEqual(r.body.decision, windowToken.expect);
  });

  test('approval-required with a window grant goes to the service, whose allow passes with its headers', async () => {
    const allow = granted(windowRequired.expect, 'apr-7');
    service.check = () => [200, answer(allow)];
    const before = service.checks.length;
    const r = await rawCall(base, {
      method: 'POST',
      path: '/things/t-1/share',
      headers: {
        authorization: bearer(windowRequired),
        'X-Trace': ['b', 'a'],
        'x-greenlight-approval': 'forged',
        'content-type': 'application/json',
      },
      body: windowRequired.request.http.params,
    });
    assert.equal(service.checks.length, before + 1);
    // What the gateway saw, as [name, value] pairs: lower-case names, the
    // repeated header twice and in order, the client's own x-greenlight-*.
    assert.deepEqual(service.checks.at(-1), {
      method: 'POST',
      path: '/things/t-1/share',
      query: '',
      headers: [
        ['authorization', bearer(windowRequired)],
        ['x-trace', 'b'],
        ['x-trace', 'a'],
        ['x-greenlight-approval', 'forged'],
        ['content-type', 'application/json'],
        ['host', base.slice('http://'.length)],
        ['connection', 'keep-alive'],
        ['content-length', '16'],
      ],
      params: { with: 'carol' },
    });
    assert.equal(r.status, 200);
    assert.equal(r.body.headers['x-greenlight-subject'], 'bob');
    assert.equal(r.body.headers['x-greenlight-action'], 'thing.share');
    assert.equal(r.body.headers['x-greenlight-approval'], 'apr-7');
    assert.deepEqual(r.body.body, { with: 'carol' });
    assert.deepEqual(r.body.decision, { verdict: allow, reasons: ['thing-share'], policy_hash: windowToken.expect.policy_hash });
  });

  test('without a window grant at the service, its challenge is answered with this gateway\'s ask', async () => {
    const elsewhere = { backchannel_authentication_endpoint: 'http://elsewhere/oauth/bc-authorize', token_endpoint: 'http://elsewhere/oauth/token' };
    service.check = () => [200, JSON.stringify({ ...windowRequired.expect, ask: elsewhere })];
    const before = service.checks.length;
    const r = await share(windowRequired);
    assert.equal(service.checks.length, before + 1);
    assert.equal(r.status, 401);
    assert.equal(r.headers.get('www-authenticate'), 'Bearer error="insufficient_authorization", error_description="approval required"');
    assert.deepEqual(r.body, policy.respond(windowRequired.expect, serviceUrl).body);
    assert.equal(r.body.obligation.grant, 'window');
    assert.equal(r.body.ask.token_endpoint, `${serviceUrl}/oauth/token`);
  });

  test('approval-required with a once grant is answered without asking the service', async () => {
    service.check = () => [500, '']; // would be a 503
    const before = service.checks.length;
    const r = await call(base, { method: 'POST', path: '/things/t-1/delete', headers: { authorization: bearer(onceRequired) } });
    assert.equal(service.checks.length, before);
    assert.equal(r.status, 401);
    assert.equal(r.headers.get('www-authenticate'), 'Bearer error="insufficient_authorization", error_description="approval required"');
    assert.equal(r.body.obligation.grant, 'once');
    assert.deepEqual(r.body, policy.respond(onceRequired.expect, serviceUrl).body);
  });

  for (const [name, v] of [['a window action token', windowToken], ['a window grant', windowRequired]]) {
    test(`${name}: an error status or a non-decision at the service denies (engine-unavailable)`, async () => {
      service.check = () => [502, ''];
      let r = await share(v);
      assert.equal(r.status, 503);
      assert.deepEqual(r.body, {
        error: 'temporarily_unavailable',
        error_description: 'the approval service answered with status 502',
        code: 'engine-unavailable',
      });
      service.check = () => [200, '{"verdict":{"kind":"maybe"},"reasons":[],"policy_hash":"x"}'];
      r = await share(v);
      assert.equal(r.status, 503);
      assert.deepEqual(r.body, {
        error: 'temporarily_unavailable',
        error_description: "the approval service's answer is not a decision: the verdict has no known kind",
        code: 'engine-unavailable',
      });
    });
  }

  test('nothing was logged', () => {
    assert.deepEqual(logged, []);
  });
});

describe('keys are fetched again when a token names an unknown one', () => {
  test('an action token signed with a key published after start verifies', async () => {
    const v = vector('058-');
    const service = new FakeService(readFileSync(join(root, 'tests/bundles/tokens/ed.jwks.json'), 'utf8'));
    const serviceUrl = await listen(service.server);
    const policy = engine.loadBundleDir(join(root, v.bundle));
    const handler = withGreenlight({ policy, serviceUrl, now: () => NOW, keysRefreshMs: 0, log: () => {}, keySources: false }, echo);
    const app = createServer(handler);
    const base = await listen(app);
    try {
      await handler.ready;
      assert.equal(service.jwksFetches, 1);
      service.jwks = GREENLIGHT_JWKS; // the service rotated to a new key
      service.check = () => [200, JSON.stringify(v.expect)];
      const r = await call(base, { method: 'POST', path: '/things/t-1/delete', headers: { authorization: bearer(v) } });
      assert.equal(r.status, 200);
      assert.equal(service.jwksFetches, 2);
      assert.deepEqual(r.body.decision, v.expect);
    } finally {
      app.close();
      service.server.close();
      policy.close();
    }
  });

  test('an unknown key of an issuer whose keys the host fetches does not fetch the service\'s keys', async () => {
    // The denial names https://uri.example: the service's JWKS cannot bring
    // its keys; its own jwks_uri is fetched again instead (here a stand-in
    // fetch answering 503: keys.test.mjs fetches over real HTTP).
    const v = vector('056-'); // a token of https://uri.example, whose keys nobody set
    const service = new FakeService(GREENLIGHT_JWKS);
    const serviceUrl = await listen(service.server);
    const policy = engine.loadBundleDir(join(root, v.bundle));
    const asked = [];
    const fetch503 = async (url) => {
      asked.push(url);
      return new Response('', { status: 503 });
    };
    const keySources = new KeySources(policy, { now: () => NOW, fetch: fetch503, log: () => {} });
    const handler = withGreenlight({ policy, serviceUrl, now: () => NOW, keysRefreshMs: 0, log: () => {}, keySources }, echo);
    const app = createServer(handler);
    const base = await listen(app);
    try {
      await handler.ready;
      assert.equal(service.jwksFetches, 1);
      assert.equal(handler.keySources, keySources);
      const r = await call(base, { path: '/things/t-1', headers: { authorization: bearer(v) } });
      assert.equal(r.status, 401);
      assert.deepEqual(r.body, {
        error: 'invalid_token',
        error_description: 'no keys are loaded for issuer `https://uri.example`: fetching its keys failed: ' +
          'GET https://uri.example/.well-known/jwks.json: status 503',
        code: 'token-unknown-key',
      });
      assert.equal(service.jwksFetches, 1);
      // At start, and once for the unknown kid.
      assert.deepEqual(asked, Array(2).fill('https://uri.example/.well-known/jwks.json'));
    } finally {
      handler.close();
      app.close();
      service.server.close();
      policy.close();
    }
  });
});

test('the service is asked on typed fields, never on a header', () => {
  // needsService reads `consume`, `approval_id` and the grant: an
  // `x-greenlight-approval` forward header without an approval id asks
  // nothing, an approval id without the header asks.
  const once = vector('058-').expect;
  const window = vector('066-').expect;
  const allow = vector('001-').expect;
  assert.deepEqual([needsService(once), needsService(window), needsService(allow)], [true, true, false]);
  const headerOnly = { ...allow, verdict: { ...allow.verdict, forward_headers: [...allow.verdict.forward_headers, ['x-greenlight-approval', 'apr-1']] } };
  assert.equal(needsService(headerOnly), false);
  const idOnly = { ...window, verdict: { ...window.verdict, forward_headers: window.verdict.forward_headers.slice(0, 2) } };
  assert.equal(needsService(idOnly), true);
  assert.equal(needsService({ ...once, verdict: { ...once.verdict, approval_id: null } }), true);
  assert.deepEqual([needsService(vector('065-').expect), needsService(vector('057-').expect)], [true, false]);
  assert.equal(needsService(denied('policy-forbidden', 'no', 'h')), false);
});

test('every answer comes from the component', async () => {
  // Behind the hostile module (whose `respond` passes everything through),
  // a deny is answered 503 engine-invalid-output: the middleware gives the
  // component's answer, checked, never its own.
  const defaults = JSON.parse(readFileSync(join(GEN_DIR, 'default.json'), 'utf8'));
  const path = process.env.GREENLIGHT_HOSTILE_WASM ?? join(dirname(defaults.wasm), 'greenlight_test_hostile.wasm');
  assert.ok(existsSync(path), `the hostile component is not at ${path} (set GREENLIGHT_HOSTILE_WASM)`);
  const hostile = await Engine.load(path);
  const policy = hostile.loadBundle([]);
  const service = new FakeService(GREENLIGHT_JWKS);
  const serviceUrl = await listen(service.server);
  const handler = withGreenlight({ policy, serviceUrl, now: () => NOW, log: () => {} }, echo);
  const app = createServer(handler);
  const base = await listen(app);
  try {
    await handler.ready;
    const r = await call(base, { path: '/trap' });
    assert.equal(r.status, 503);
    assert.equal(r.headers.get('content-type'), 'application/json');
    assert.equal(r.headers.get('cache-control'), 'no-store');
    assert.equal(r.headers.get('www-authenticate'), null);
    assert.deepEqual(r.body, {
      error: 'temporarily_unavailable',
      error_description: 'the policy module answered wrongly: status 0 with no body does not answer a deny `engine-trap`',
      code: 'engine-invalid-output',
    });
    const ok = await call(base, { path: '/ok' }); // the hostile allow reaches the handler
    assert.equal(ok.status, 200);
    assert.equal(ok.body.decision.verdict.principal.subject, 'hostile');
  } finally {
    app.close();
    service.server.close();
    policy.close();
    hostile.close();
  }
});

// The service URLs refused, with the exact message; bindings/python refuses
// the same ones with the same messages (tests/python/test_middleware.py).
const notAbsolute = (url) =>
  `greenlight: the approval service URL ${JSON.stringify(url)} is not an absolute URL; give its base URL, such as https://greenlight.example.com`;
const REFUSED_URLS = [
  ['http://gl.internal:8080', 'greenlight: the approval service URL http://gl.internal:8080 is plain HTTP outside loopback; use https://'],
  ['http://127.0.0.1.evil.com', 'greenlight: the approval service URL http://127.0.0.1.evil.com is plain HTTP outside loopback; use https://'],
  ['http://localhost.evil.com:8080', 'greenlight: the approval service URL http://localhost.evil.com:8080 is plain HTTP outside loopback; use https://'],
  ['http://[::2]:8080', 'greenlight: the approval service URL http://[::2]:8080 is plain HTTP outside loopback; use https://'],
  // The host is evil.com: what follows `#` is the fragment.
  ['http://evil.com#@127.0.0.1', 'greenlight: the approval service URL http://evil.com is plain HTTP outside loopback; use https://'],
  // The host is evil.com: what precedes `@` is a user name.
  ['http://127.0.0.1@evil.com', 'greenlight: the approval service URL http://evil.com has a user name or password before its host; remove them'],
  ['http://user:secret@127.0.0.1:8080', 'greenlight: the approval service URL http://127.0.0.1:8080 has a user name or password before its host; remove them'],
  ['https://user:secret@greenlight.example.com',
    'greenlight: the approval service URL https://greenlight.example.com has a user name or password before its host; remove them'],
  ['ftp://greenlight.example.com', 'greenlight: the approval service URL has the scheme ftp:; use https:// (http:// only on loopback)'],
  ['file:///etc/greenlight', 'greenlight: the approval service URL has the scheme file:; use https:// (http:// only on loopback)'],
  ['localhost:8080', 'greenlight: the approval service URL has the scheme localhost:; use https:// (http:// only on loopback)'],
  ['greenlight.example.com', notAbsolute('greenlight.example.com')],
  ['127.0.0.1:8080', notAbsolute('127.0.0.1:8080')],
  ['', notAbsolute('')],
  ['http://', notAbsolute('http://')],
  ['http://[::1', notAbsolute('http://[::1')],
  ['http://127.0.0.1:99999', notAbsolute('http://127.0.0.1:99999')],
  ['https://greenlight.example.com/?x=1',
    'greenlight: the approval service URL https://greenlight.example.com has a query or fragment; give its base URL only'],
  ['https://greenlight.example.com/#top',
    'greenlight: the approval service URL https://greenlight.example.com has a query or fragment; give its base URL only'],
];

/** tests/bundles/tokens with Greenlight's keys left to the host, in a fresh directory. */
function bundleWithoutActionKeys() {
  const dir = mkdtempSync(join(tmpdir(), 'greenlight-bundle-'));
  cpSync(join(root, 'tests/bundles/tokens'), dir, { recursive: true });
  unlinkSync(join(dir, 'greenlight.jwks.json'));
  const toml = join(dir, 'greenlight.toml');
  const text = readFileSync(toml, 'utf8');
  assert.ok(text.includes('jwks = "greenlight.jwks.json"\n'));
  writeFileSync(toml, text.replace('jwks = "greenlight.jwks.json"\n', ''));
  return dir;
}

/**
 * A loopback server: `routes` maps `${method} ${path}` to [status, headers,
 * body], anything else is a 404; `requests` records `${method} ${path}`.
 */
function loopbackServer(routes) {
  const requests = [];
  const server = createServer(async (req, res) => {
    for await (const _ of req); // the body, read and dropped
    requests.push(`${req.method} ${req.url}`);
    const [status, headers, body] = routes[`${req.method} ${req.url}`] ?? [404, {}, ''];
    res.writeHead(status, headers);
    res.end(body);
  });
  return { server, requests };
}

describe('the approval service URL', () => {
  const v = vector('058-'); // POST /things/t-1/delete with a `once` action token: it asks the service
  let policy;
  before(() => {
    policy = engine.loadBundleDir(join(root, v.bundle));
  });
  after(() => policy.close());

  for (const [url, message] of REFUSED_URLS) {
    test(`${JSON.stringify(url)} is refused`, () => {
      // The gateway sends the service the client's bearer tokens and takes
      // from it the keys that verify action tokens: never over plain HTTP
      // beyond this machine, never to a URL that only looks like loopback.
      assert.throws(() => greenlight({ policy, serviceUrl: url }), (e) => {
        assert.equal(e.constructor, TypeError);
        assert.equal(e.message, message);
        return true;
      });
      assert.throws(() => withGreenlight({ policy, serviceUrl: url }, echo), { name: 'TypeError', message });
    });
  }

  test('a service URL that is not a string is refused', () => {
    assert.throws(() => greenlight({ policy, serviceUrl: new URL('https://greenlight.example.com') }), {
      name: 'TypeError',
      message: 'greenlight() needs {policy, serviceUrl}',
    });
  });

  test('https and loopback http are accepted, kept as parsed (trailing slashes and default port dropped)', async () => {
    // A loopback port nothing listens on, so every call to the service
    // fails and the deny names the URL the middleware uses.
    const closed = createServer();
    const port = Number(new URL(await listen(closed)).port);
    await new Promise((ok) => closed.close(ok));
    const accepted = [
      [`http://127.0.0.1:${port}/`, `http://127.0.0.1:${port}`],
      [`http://127.0.0.2:${port}`, `http://127.0.0.2:${port}`],
      [`http://localhost:${port}`, `http://localhost:${port}`],
      [`http://LOCALHOST:${port}`, `http://localhost:${port}`],
      [`http://[::1]:${port}/`, `http://[::1]:${port}`],
      ['https://greenlight.invalid', 'https://greenlight.invalid'],
      ['https://greenlight.invalid/approvals/', 'https://greenlight.invalid/approvals'],
      ['HTTPS://Greenlight.Invalid:443//', 'https://greenlight.invalid'],
      ['https://gl.invalid:8443', 'https://gl.invalid:8443'],
    ];
    for (const [serviceUrl, used] of accepted) {
      const handler = withGreenlight({ policy, serviceUrl, now: () => NOW, log: () => {}, serviceTimeoutMs: 2000, keySources: false }, echo);
      const app = createServer(handler);
      const base = await listen(app);
      try {
        await handler.ready;
        const r = await call(base, { method: 'POST', path: '/things/t-1/delete', headers: { authorization: bearer(v) } });
        assert.equal(r.status, 503, serviceUrl);
        assert.deepEqual(r.body, {
          error: 'temporarily_unavailable',
          error_description: `the approval service at ${used} cannot be reached`,
          code: 'engine-unavailable',
        }, serviceUrl);
      } finally {
        app.close();
      }
    }
  });

  test('with a trailing slash, the keys and the challenge use the base URL', async () => {
    const service = new FakeService(GREENLIGHT_JWKS);
    const serviceUrl = await listen(service.server);
    const demo = engine.loadBundleDir(join(root, 'examples/bundle'));
    const handler = withGreenlight({ policy: demo, serviceUrl: `${serviceUrl}/`, now: () => NOW, log: () => {} }, echo);
    const app = createServer(handler);
    const base = await listen(app);
    try {
      await handler.ready;
      assert.equal(service.jwksFetches, 1); // `/.well-known/jwks.json`, not `//.well-known/jwks.json`
      const refund = vector('002-');
      const r = await call(base, {
        method: 'POST',
        path: refund.request.http.path,
        headers: { authorization: bearer(refund), 'content-type': 'application/json' },
        body: refund.request.http.params,
      });
      assert.equal(r.status, 401);
      assert.equal(r.body.ask.backchannel_authentication_endpoint, `${serviceUrl}/oauth/bc-authorize`);
      assert.deepEqual(r.body, demo.respond(refund.expect, serviceUrl).body);
    } finally {
      app.close();
      service.server.close();
      demo.close();
    }
  });
});

describe('redirects from the approval service are not followed', () => {
  const v = vector('058-'); // POST /things/t-1/delete with a `once` action token
  const elsewhere = loopbackServer({
    'GET /keys.json': [200, { 'content-type': 'application/json' }, GREENLIGHT_JWKS],
    'POST /v1/check': [200, { 'content-type': 'application/json' }, JSON.stringify(v.expect)],
  });
  let elsewhereUrl;
  before(async () => {
    elsewhereUrl = await listen(elsewhere.server);
  });
  after(() => elsewhere.server.close());

  /** A gateway for `bundle` whose service answers with the `routes`; runs `act` against it. */
  async function withService(bundle, routes, act) {
    const service = loopbackServer(routes);
    const serviceUrl = await listen(service.server);
    const policy = engine.loadBundleDir(bundle);
    const logged = [];
    const handler = withGreenlight({ policy, serviceUrl, now: () => NOW, keysRefreshMs: 0, log: (m) => logged.push(m), keySources: false }, echo);
    const app = createServer(handler);
    const base = await listen(app);
    try {
      await handler.ready;
      await act({ base, service, logged });
    } finally {
      app.close();
      service.server.close();
      policy.close();
    }
  }

  test('a key fetch answered 302 loads nothing: the token still names an unknown key', async () => {
    // The other server serves the keys that signed the token; following
    // the redirect would let it through.
    const bundle = bundleWithoutActionKeys();
    try {
      await withService(bundle, { 'GET /.well-known/jwks.json': [302, { location: `${elsewhereUrl}/keys.json` }, ''] }, async ({ base, service, logged }) => {
        const r = await call(base, { method: 'POST', path: '/things/t-1/delete', headers: { authorization: bearer(v) } });
        assert.equal(r.status, 401);
        assert.deepEqual(r.body, {
          error: 'invalid_token',
          error_description: 'no keys are loaded for issuer `https://greenlight.test`',
          code: 'token-unknown-key',
        });
        // Fetched at start and again for the unknown key; refused both times.
        assert.deepEqual(service.requests, ['GET /.well-known/jwks.json', 'GET /.well-known/jwks.json']);
        assert.deepEqual(logged, Array(2).fill("the approval service's keys could not be loaded: status 302"));
      });
    } finally {
      rmSync(bundle, { recursive: true });
    }
    assert.deepEqual(elsewhere.requests, []);
  });

  test('a check answered 307 denies (engine-unavailable), never reaching the other server', async () => {
    // The bundle's own keys verify the token; the service's JWKS is a 404.
    await withService(join(root, v.bundle), { 'POST /v1/check': [307, { location: `${elsewhereUrl}/v1/check` }, ''] }, async ({ base, service }) => {
      const r = await call(base, { method: 'POST', path: '/things/t-1/delete', headers: { authorization: bearer(v) } });
      assert.equal(r.status, 503);
      assert.deepEqual(r.body, {
        error: 'temporarily_unavailable',
        error_description: 'the approval service answered with status 307',
        code: 'engine-unavailable',
      });
      assert.deepEqual(service.requests, ['GET /.well-known/jwks.json', 'POST /v1/check']);
    });
    assert.deepEqual(elsewhere.requests, []);
  });
});
