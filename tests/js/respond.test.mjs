// respond() beside greenlight_core::gateway's own tests, and the checks on
// what a policy module returns (the guest is untrusted, like any input).

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { denied, respond } from '../../bindings/js/src/index.js';
import { checkDecision, fromWit, InvalidOutput } from '../../bindings/js/src/decision.js';

test('a missing token gets a bare Bearer challenge', () => {
  const r = respond(denied('token-missing', 'no bearer token', 'h'), 'https://gl.example');
  assert.deepEqual(r, {
    status: 401,
    headers: [['www-authenticate', 'Bearer'], ['content-type', 'application/json'], ['cache-control', 'no-store']],
    body: { error: 'invalid_token', error_description: 'no bearer token', code: 'token-missing' },
  });
});

test('quotes, backslashes and control characters cannot break the header', () => {
  const r = respond(denied('token-malformed', 'bad "x\\y"\n', 'h'), 's');
  assert.equal(r.headers[0][1], 'Bearer error="invalid_token", error_description="bad \'x/y\' "');
  assert.equal(r.body.error_description, 'bad "x\\y"\n');
});

test('engine failures are 503 without a challenge', () => {
  const r = respond(denied('engine-timeout', 'slow', 'h'), 's');
  assert.equal(r.status, 503);
  assert.deepEqual(r.headers, [['content-type', 'application/json'], ['cache-control', 'no-store']]);
  assert.deepEqual(r.body, { error: 'temporarily_unavailable', error_description: 'slow', code: 'engine-timeout' });
});

test('every denial code has its status and error', () => {
  const cases = {
    'request-invalid': [400, 'invalid_request'],
    'route-not-found': [403, 'access_denied'],
    'policy-forbidden': [403, 'access_denied'],
    'policy-no-permit': [403, 'access_denied'],
    'action-token-digest-mismatch': [403, 'access_denied'],
    'token-expired': [401, 'invalid_token'],
    'action-token-invalid': [401, 'invalid_token'],
    'action-token-replayed': [401, 'invalid_token'],
    'engine-unavailable': [503, 'temporarily_unavailable'],
  };
  for (const [code, [status, error]] of Object.entries(cases)) {
    const r = respond(denied(code, 'm', 'h'), 's');
    assert.deepEqual([r.status, r.body.error], [status, error], code);
  }
});

test('an approval challenge without a message says approval required', () => {
  const d = {
    verdict: {
      kind: 'approval-required',
      authorization_details: [{ type: 'urn:greenlight:action' }],
      action_digest: 'dig',
      obligation: { approvers: ['subject'], quorum: 1, ttl_seconds: 300, grant: 'window', window_seconds: 300, reason_required: false, message: '' },
    },
    reasons: ['p'],
    policy_hash: 'h',
  };
  const r = respond(d, 'https://gl.example');
  assert.equal(r.status, 401);
  assert.equal(
    JSON.stringify(r.body),
    '{"error":"insufficient_authorization","error_description":"approval required","code":"approval-required",' +
      '"authorization_details":[{"type":"urn:greenlight:action"}],"action_digest":"dig",' +
      '"obligation":{"approvers":["subject"],"quorum":1,"ttl_seconds":300,"grant":"window","window_seconds":300,"reason_required":false,"message":""},' +
      '"ask":{"backchannel_authentication_endpoint":"https://gl.example/oauth/bc-authorize","token_endpoint":"https://gl.example/oauth/token"}}',
  );
});

/** A well-formed allow as jco lifts it. */
const allow = (over = {}) => ({
  verdict: { tag: 'allow', val: { subject: 'bob', consume: undefined, forwardHeaders: [['x-greenlight-subject', 'bob']], ...over } },
  reasons: [],
  policyHash: 'h',
});

test('a well-formed guest decision converts to the Rust JSON', () => {
  assert.equal(
    JSON.stringify(fromWit(allow({ consume: { tokenId: 'at-1', expiresAt: 1767225720n } }))),
    '{"verdict":{"kind":"allow","subject":"bob","consume":{"token_id":"at-1","expires_at":1767225720},"forward_headers":[["x-greenlight-subject","bob"]]},"reasons":[],"policy_hash":"h"}',
  );
});

test('malformed guest decisions are refused, each with its reason', () => {
  const refused = (raw, why) => assert.throws(() => fromWit(raw), (e) => e instanceof InvalidOutput && e.message === why);
  refused(allow({ subject: '' }), 'an allow without a subject');
  refused(allow({ forwardHeaders: [['x-a', 'b\r\nset-cookie: x']] }), 'header `x-a` is not a valid HTTP header');
  refused(allow({ forwardHeaders: [['bad name', 'v']] }), 'header `bad name` is not a valid HTTP header');
  refused(allow({ consume: { tokenId: '', expiresAt: 1n } }), 'a single-use token without an id');
  refused(allow({ consume: { tokenId: 'a', expiresAt: 2n ** 60n } }), 'expires_at (1152921504606846976) is out of range');
  refused({ ...allow(), reasons: Array(65).fill('p') }, 'reasons has 65 entries');
  refused({ ...allow(), policyHash: 'x'.repeat(64 * 1024 + 1) }, 'the policy hash has 65537 bytes');
  refused({ verdict: { tag: 'deny', val: { code: 'no-such-code', message: 'm' } }, reasons: [], policyHash: 'h' }, 'the denial code is unknown');
  const challenge = (details, obligation = {}) => ({
    verdict: {
      tag: 'approval-required',
      val: {
        authorizationDetails: details,
        actionDigest: 'd',
        obligation: { approvers: ['group:x'], quorum: 1, ttlSeconds: 1n, grant: 'once', windowSeconds: 0n, reasonRequired: false, message: '', ...obligation },
      },
    },
    reasons: [],
    policyHash: 'h',
  });
  assert.equal(fromWit(challenge('[{"a":1}]')).verdict.authorization_details[0].a, 1);
  refused(challenge('{"a":1}'), 'authorization_details is not an array');
  refused(challenge('[{"a":'), 'authorization_details is not JSON: Unexpected end of JSON input');
  refused(challenge('[{"amount":9007199254740993}]'), 'authorization_details has values JavaScript cannot represent exactly');
  refused(challenge('[]', { approvers: [] }), 'an obligation without approvers or quorum');
  refused(challenge('[]', { quorum: 0 }), 'an obligation without approvers or quorum');
});

test('a decision in JSON form must have exactly the Rust fields', () => {
  const d = { verdict: { kind: 'deny', code: 'policy-forbidden', message: 'no' }, reasons: ['p'], policy_hash: 'h' };
  assert.deepEqual(checkDecision(d), d);
  assert.throws(() => checkDecision({ ...d, extra: 1 }), /the decision has an unknown field `extra`/);
  assert.throws(() => checkDecision({ ...d, verdict: { kind: 'allow', subject: 'x' } }), /the allowance lacks `consume`/);
  assert.throws(() => checkDecision(null), /the decision is not an object/);
});
