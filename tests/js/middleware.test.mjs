// The Node middleware over real HTTP, against a stand-in approval service:
// what reaches the handler on allow, the exact answers for the rest, and
// the one-time action token path (the service decides; unreachable or
// nonsense answers deny). The clock is pinned to the vectors' `now` so their
// tokens are valid. The real service is exercised in examples/node-gateway.

import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { createServer } from 'node:http';
import { join, resolve } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { Engine, respond, withGreenlight } from '../../bindings/js/src/index.js';

const root = resolve(import.meta.dirname, '..', '..');
const NOW = 1767225600;

/** The vector whose file name starts with `prefix`. */
function vector(prefix) {
  const name = readdirSync(join(root, 'tests/vectors')).find((n) => n.startsWith(prefix));
  return JSON.parse(readFileSync(join(root, 'tests/vectors', name), 'utf8'));
}

const bearer = (v) => v.request.http.headers.find(([k]) => k === 'authorization')[1];

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
      },
      body: v.request.http.params,
    });
    assert.equal(r.status, 200);
    assert.equal(r.body.headers['x-greenlight-subject'], 'alice');
    assert.equal(r.body.headers['x-greenlight-action'], 'payment.refund');
    assert.equal(r.body.headers['x-greenlight-approval'], undefined);
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
    const expected = respond(v.expect, serviceUrl);
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
    const handler = withGreenlight({ policy, serviceUrl, now: () => NOW, log: (m) => logged.push(m), serviceTimeoutMs: 2000 }, echo);
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
    assert.deepEqual(
      [sent.method, sent.path, sent.query, sent.params, sent.headers.authorization],
      ['POST', '/things/t-1/delete', '', null, bearer(v)],
    );
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
      error_description: "the approval service's answer is not a decision: the allowance lacks `consume`",
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

describe('keys are fetched again when a token names an unknown one', () => {
  test('an action token signed with a key published after start verifies', async () => {
    const v = vector('058-');
    const service = new FakeService(readFileSync(join(root, 'tests/bundles/tokens/ed.jwks.json'), 'utf8'));
    const serviceUrl = await listen(service.server);
    const policy = engine.loadBundleDir(join(root, v.bundle));
    const handler = withGreenlight({ policy, serviceUrl, now: () => NOW, keysRefreshMs: 0, log: () => {} }, echo);
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
});
