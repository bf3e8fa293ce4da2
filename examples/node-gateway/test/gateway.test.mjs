// The README's approval story, end to end over real HTTP with real tokens:
// the real approval service (`greenlight serve` on SQLite), this Express
// gateway in front of the demo bundle, and the CIBA dance in between.
//
//   GREENLIGHT_BIN=path/to/greenlight node --test test/
//
// (bindings/js/test.sh sets GREENLIGHT_BIN and transpiles the component first.)

import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { after, before, test } from 'node:test';
import { createApp } from '../app.js';

const root = resolve(import.meta.dirname, '..', '..', '..');
const bundle = join(root, 'examples', 'bundle');
const bin = process.env.GREENLIGHT_BIN ?? join(process.env.CARGO_TARGET_DIR ?? join(root, 'target'), 'debug', 'greenlight');

const DIGEST = '37yCphGUEolWZQHCog7QpuCi5VA8GMxvuXmGzRBmyYc';
const DETAILS = [
  {
    type: 'urn:greenlight:action',
    locations: ['https://api.example.com'],
    actions: ['payment.refund'],
    identifier: 'Payment::pay_123',
    resource: { type: 'Payment', id: 'pay_123' },
    params: { amount: 500, currency: 'EUR' },
    action_digest: DIGEST,
  },
];
const OBLIGATION = {
  approvers: ['group:finance'],
  quorum: 2,
  ttl_seconds: 900,
  grant: 'once',
  window_seconds: 0,
  reason_required: true,
  message: 'Refund above 100: two finance approvals needed',
};

/** A free loopback port (the service needs one before it starts). */
function freePort() {
  return new Promise((ok, fail) => {
    const s = createServer();
    s.once('error', fail);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => ok(port));
    });
  });
}

const token = (...args) => execFileSync(bin, ['dev-token', '--bundle', bundle, ...args], { encoding: 'utf8' }).trim();

let tmp;
let service;
let serviceLog = '';
let serviceUrl;
let gateway;
let server;
let api;
let alice;
let bob;
let carol;

before(async () => {
  assert.ok(existsSync(bin), `no greenlight binary at ${bin}: build it (cargo build -p greenlight) or set GREENLIGHT_BIN`);
  tmp = mkdtempSync(join(tmpdir(), 'greenlight-node-'));
  const port = await freePort();
  serviceUrl = `http://127.0.0.1:${port}`;
  service = spawn(bin, ['serve', '--dev', '--bundle', bundle, '--store', `sqlite://${join(tmp, 'gl.db')}`, '--listen', `127.0.0.1:${port}`], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  service.stdout.on('data', (d) => (serviceLog += d));
  service.stderr.on('data', (d) => (serviceLog += d));
  service.on('error', (e) => (serviceLog += `${e.message}\n`));
  const deadline = Date.now() + 60_000;
  for (;;) {
    try {
      if ((await fetch(`${serviceUrl}/healthz`)).ok) break;
    } catch {
      // not listening yet
    }
    assert.ok(service.exitCode === null, `greenlight serve exited:\n${serviceLog}`);
    assert.ok(Date.now() < deadline, `greenlight serve did not answer /healthz within 60 s:\n${serviceLog}`);
    await new Promise((ok) => setTimeout(ok, 100));
  }
  // Alice's app (the default client, greenlight-dev) asks; bob and carol, in
  // finance, sign in to the approvals app, the one client of the demo IdP
  // whose tokens are meant for approving (`approver_clients`).
  alice = token('--sub', 'alice', '--scope', 'payments:refund');
  bob = token('--sub', 'bob', '--client', 'approvals-app', '--claim', 'groups=["finance"]');
  carol = token('--sub', 'carol', '--client', 'approvals-app', '--claim', 'groups=["finance"]');
  gateway = await createApp({ bundleDir: bundle, serviceUrl });
  server = gateway.app.listen(0, '127.0.0.1');
  await new Promise((ok) => server.once('listening', ok));
  api = `http://127.0.0.1:${server.address().port}`;
});

after(() => {
  server?.close();
  gateway?.close();
  service?.kill('SIGTERM');
  if (tmp) rmSync(tmp, { recursive: true, force: true });
});

/** A request with a bearer token; the answer's status, headers and JSON body. */
async function send(url, bearer, { method = 'POST', json, form } = {}) {
  const headers = { authorization: `Bearer ${bearer}` };
  let body;
  if (json !== undefined) {
    headers['content-type'] = 'application/json';
    body = JSON.stringify(json);
  } else if (form !== undefined) {
    body = new URLSearchParams(form);
  }
  const r = await fetch(url, { method, headers, body });
  const text = await r.text();
  return { status: r.status, headers: r.headers, text, body: JSON.parse(text) };
}

const refund = (bearer, amount) => send(`${api}/payments/pay_123/refund`, bearer, { json: { amount, currency: 'EUR' } });

test('a refund of 500 goes through after two finance approvals, exactly once', async (t) => {
  await t.test('a refund of 50 is allowed, and the handler sees the subject', async () => {
    const r = await refund(alice, 50);
    assert.equal(r.status, 200);
    assert.deepEqual(r.body, { refunded: 50, currency: 'EUR', payment: 'pay_123', subject: 'alice', approval: null });
  });

  await t.test('reading a payment without payments:read is 403', async () => {
    const r = await send(`${api}/payments/pay_123`, alice, { method: 'GET' });
    assert.equal(r.status, 403);
    assert.deepEqual(r.body, {
      error: 'access_denied',
      error_description: 'no policy permits `payment.read` on `Payment::pay_123`',
      code: 'policy-no-permit',
    });
  });

  let challenge;
  await t.test('a refund of 500 is 401 with the approval challenge', async () => {
    const r = await refund(alice, 500);
    assert.equal(r.status, 401);
    assert.equal(r.headers.get('www-authenticate'), 'Bearer error="insufficient_authorization", error_description="approval required"');
    assert.equal(r.headers.get('content-type'), 'application/json');
    assert.equal(r.headers.get('cache-control'), 'no-store');
    const expected = {
      error: 'insufficient_authorization',
      error_description: 'Refund above 100: two finance approvals needed',
      code: 'approval-required',
      authorization_details: DETAILS,
      action_digest: DIGEST,
      obligation: OBLIGATION,
      ask: {
        backchannel_authentication_endpoint: `${serviceUrl}/oauth/bc-authorize`,
        token_endpoint: `${serviceUrl}/oauth/token`,
      },
    };
    assert.equal(r.text, JSON.stringify(expected));
    challenge = r.body;
  });

  let id;
  await t.test('alice asks for approval (CIBA)', async () => {
    const r = await send(challenge.ask.backchannel_authentication_endpoint, alice, {
      form: { authorization_details: JSON.stringify(challenge.authorization_details) },
    });
    assert.equal(r.status, 200);
    assert.deepEqual(Object.keys(r.body), ['auth_req_id', 'expires_in', 'interval']);
    // The service computes `expires_in` from the approval's expiry (now + 900
    // when it was created) and its clock when it answers, each read on the
    // wall clock: the second may turn in between. Bounded, not exact.
    assert.ok(r.body.expires_in >= 899 && r.body.expires_in <= 900, `expires_in ${r.body.expires_in}`);
    assert.equal(r.body.interval, 5);
    id = r.body.auth_req_id;
  });

  const poll = () =>
    send(challenge.ask.token_endpoint, alice, { form: { grant_type: 'urn:openid:params:grant-type:ciba', auth_req_id: id } });

  await t.test('before anyone decides, polling is pending', async () => {
    const r = await poll();
    assert.equal(r.status, 400);
    assert.deepEqual(r.body, { error: 'authorization_pending', error_description: 'the approvers have not decided yet' });
  });

  const approve = (bearer, reason) => send(`${serviceUrl}/v1/approvals/${id}/approve`, bearer, { json: { reason } });

  await t.test('the app that asked cannot vote on its own request', async () => {
    const r = await approve(alice, 'trust me');
    assert.equal(r.status, 403);
    assert.deepEqual(r.body, {
      error: 'access_denied',
      error_description: 'client `greenlight-dev` asked for this action and cannot vote on it',
    });
  });

  await t.test('alice cannot approve her own refund, even through the approvals app', async () => {
    const r = await approve(token('--sub', 'alice', '--client', 'approvals-app'), 'trust me');
    assert.equal(r.status, 403);
    assert.deepEqual(r.body, {
      error: 'access_denied',
      error_description: '`alice` asked for this action and cannot approve their own request',
    });
  });

  await t.test("bob's token held by another app is not meant for approving", async () => {
    const r = await approve(token('--sub', 'bob', '--client', 'shop-backend', '--claim', 'groups=["finance"]'), 'customer verified');
    assert.equal(r.status, 403);
    assert.deepEqual(r.body, {
      error: 'access_denied',
      error_description:
        "a token of client `shop-backend` is not meant for approving: votes are cast with a token from one of the issuer's approver clients or with its approval scope",
    });
  });

  await t.test('bob and carol from finance approve through the approvals app', async () => {
    const first = await approve(bob, 'customer verified');
    assert.equal(first.status, 200);
    assert.deepEqual([first.body.status, first.body.approve_count, first.body.recorded], ['pending', 1, true]);
    const second = await approve(carol, 'second pair of eyes');
    assert.equal(second.status, 200);
    assert.deepEqual([second.body.status, second.body.approve_count, second.body.recorded], ['approved', 2, true]);
  });

  let actionToken;
  await t.test('polling now gives the action token', async () => {
    const r = await poll();
    assert.equal(r.status, 200);
    assert.equal(r.body.token_type, 'Bearer');
    // Exact: the service takes `exp` and `expires_in` from one reading of its
    // clock (exp = now + ttl, expires_in = exp - now), so no second can turn
    // between them; alice's token (3600 s) outlives the 300 s ttl.
    assert.equal(r.body.expires_in, 300);
    assert.deepEqual(r.body.authorization_details, DETAILS);
    actionToken = r.body.access_token;
  });

  await t.test('the action token lets this refund through once', async () => {
    const r = await refund(actionToken, 500);
    assert.equal(r.status, 200);
    assert.deepEqual(r.body, { refunded: 500, currency: 'EUR', payment: 'pay_123', subject: 'alice', approval: id });
  });

  await t.test('a second use is a replay: 401 invalid_token', async () => {
    const jti = JSON.parse(Buffer.from(actionToken.split('.')[1], 'base64url').toString()).jti;
    const r = await refund(actionToken, 500);
    assert.equal(r.status, 401);
    const message = `action token \`${jti}\` was already used`;
    assert.equal(r.headers.get('www-authenticate'), `Bearer error="invalid_token", error_description="${message}"`);
    assert.deepEqual(r.body, { error: 'invalid_token', error_description: message, code: 'action-token-replayed' });
  });

  await t.test('the action token does not fit another refund', async () => {
    const r = await refund(actionToken, 400);
    assert.equal(r.status, 403);
    assert.deepEqual(r.body, {
      error: 'access_denied',
      error_description: 'the action token was issued for another action than `payment.refund` on `Payment::pay_123`',
      code: 'action-token-digest-mismatch',
    });
  });
});
