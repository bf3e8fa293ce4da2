// The HTTP mapping of docs/gateway.md as the component answers it
// (`policy.respond` calls its `gateway.respond`), the binding's checks on
// that answer, and the checks on what a policy module returns (the guest is
// untrusted, like any input).

import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { DENIAL_CODES, denied, Engine } from '../../bindings/js/src/index.js';
import { checkDecision, InvalidOutput, readDecision } from '../../bindings/js/src/decision.js';
import { checkAnswer } from '../../bindings/js/src/respond.js';

const root = resolve(import.meta.dirname, '..', '..');
const JSON_HEADERS = [['content-type', 'application/json'], ['cache-control', 'no-store']];

/** The vector whose file name starts with `prefix`. */
function vector(prefix) {
  const name = readdirSync(join(root, 'tests/vectors')).find((n) => n.startsWith(prefix));
  return JSON.parse(readFileSync(join(root, 'tests/vectors', name), 'utf8'));
}

/** The table of docs/gateway.md, written out by hand: code -> [status, error]. */
const TABLE = {
  'request-invalid': [400, 'invalid_request'],
  ...Object.fromEntries(
    [
      'token-missing', 'token-too-large', 'token-malformed', 'token-unsupported-algorithm', 'token-algorithm-not-allowed',
      'token-unknown-issuer', 'token-unknown-key', 'token-key-mismatch', 'token-bad-signature', 'token-wrong-type',
      'token-unknown-critical-header', 'token-wrong-audience', 'token-expired', 'token-not-yet-valid',
      'token-issued-in-future', 'token-missing-claim', 'token-invalid-claim', 'action-token-invalid', 'action-token-replayed',
    ].map((c) => [c, [401, 'invalid_token']]),
  ),
  ...Object.fromEntries(
    ['route-not-found', 'policy-forbidden', 'policy-no-permit', 'action-token-digest-mismatch'].map((c) => [c, [403, 'access_denied']]),
  ),
  ...Object.fromEntries(
    ['engine-trap', 'engine-timeout', 'engine-memory-exceeded', 'engine-invalid-output', 'engine-unavailable'].map((c) => [
      c,
      [503, 'temporarily_unavailable'],
    ]),
  ),
};

describe('the component answers a decision', () => {
  let engine;
  let demo;
  before(async () => {
    engine = await Engine.load();
    demo = engine.loadBundleDir(join(root, 'examples/bundle'));
  });
  after(() => {
    demo.close();
    engine.close();
  });

  test('a missing token gets a bare Bearer challenge', () => {
    assert.deepEqual(demo.respond(denied('token-missing', 'no bearer token', 'h'), 'https://gl.example'), {
      status: 401,
      headers: [['www-authenticate', 'Bearer'], ...JSON_HEADERS],
      body: { error: 'invalid_token', error_description: 'no bearer token', code: 'token-missing' },
    });
  });

  test('quotes, backslashes and control characters cannot break the header', () => {
    const r = demo.respond(denied('token-malformed', 'bad "x\\y"\n\x7f\u0085é', 'h'), 's');
    assert.equal(r.status, 401);
    assert.equal(r.headers[0][1], 'Bearer error="invalid_token", error_description="bad \'x/y\'   é"');
    assert.equal(r.body.error_description, 'bad "x\\y"\n\x7f\u0085é');
  });

  test('engine failures are 503 without a challenge', () => {
    assert.deepEqual(demo.respond(denied('engine-timeout', 'slow', 'h'), 's'), {
      status: 503,
      headers: JSON_HEADERS,
      body: { error: 'temporarily_unavailable', error_description: 'slow', code: 'engine-timeout' },
    });
  });

  test('the table names every denial code', () => {
    assert.deepEqual(Object.keys(TABLE).sort(), [...DENIAL_CODES].sort());
  });

  for (const [code, [status, error]] of Object.entries(TABLE)) {
    test(`${code} is ${status} ${error}`, () => {
      const r = demo.respond(denied(code, 'm', 'h'), 's');
      const challenge = status !== 401 ? [] : [['www-authenticate', code === 'token-missing' ? 'Bearer' : 'Bearer error="invalid_token", error_description="m"']];
      assert.deepEqual(r, { status, headers: [...challenge, ...JSON_HEADERS], body: { error, error_description: 'm', code } });
    });
  }

  test('an approval challenge without a message says approval required, in the documented key order', () => {
    const d = vector('065-').expect; // a window grant whose @message is empty
    assert.equal(d.verdict.obligation.message, '');
    const r = demo.respond(d, 'https://gl.example');
    assert.equal(r.status, 401);
    assert.equal(r.body.error_description, 'approval required');
    assert.equal(r.body.action_digest, d.verdict.action.digest);
    assert.deepEqual(Object.keys(r.body), ['error', 'error_description', 'code', 'authorization_details', 'action_digest', 'obligation', 'ask']);
    assert.deepEqual(r.body.ask, {
      backchannel_authentication_endpoint: 'https://gl.example/oauth/bc-authorize',
      token_endpoint: 'https://gl.example/oauth/token',
    });
  });

  test('an allow is a pass-through', () => {
    assert.deepEqual(demo.respond(vector('001-').expect, 's'), { status: 0, headers: [], body: null });
  });

  test('a decision that cannot be a WIT value is answered 503', () => {
    const d = vector('002-').expect;
    const forged = { ...d, verdict: { ...d.verdict, obligation: { ...d.verdict.obligation, grant: 'forever' } } };
    assert.deepEqual(demo.respond(forged, 's'), {
      status: 503,
      headers: JSON_HEADERS,
      body: {
        error: 'temporarily_unavailable',
        error_description: 'the decision cannot be answered: the grant mode is unknown',
        code: 'engine-invalid-output',
      },
    });
  });
});

test('an answer that does not fit its decision is refused with the Rust host reason', () => {
  const deny = denied('policy-forbidden', 'no', 'h');
  const answer = (status, body, headers = []) => ({ status, headers, body });
  const refused = (raw, decision, why) =>
    assert.throws(() => checkAnswer(raw, decision), (e) => e instanceof InvalidOutput && e.message === why, why);
  refused(answer(0), deny, 'status 0 with no body does not answer a deny `policy-forbidden`');
  refused(answer(200, '{}'), deny, 'status 200 with a body does not answer a deny `policy-forbidden`');
  refused(answer(403, '[]'), deny, 'status 403 with a body does not answer a deny `policy-forbidden`');
  refused(answer(403, 'null'), deny, 'status 403 with no body does not answer a deny `policy-forbidden`');
  refused(answer(403, '{'), deny, "the answer's body is not JSON: Expected property name or '}' in JSON at position 1");
  refused(answer(403, '{}', [['bad name', 'v']]), deny, 'header `bad name` is not a valid HTTP header');
  refused(answer(403, '{}', [['x-a', '1\r\nset-cookie: x']]), deny, 'header `x-a` is not a valid HTTP header');
  refused(answer(403, '{}', Array(65).fill(['x-a', '1'])), deny, "the answer's headers has 65 entries");
  refused(answer(401, '{}'), vector('001-').expect, 'status 401 with a body does not answer an allow');
  refused(answer(0), vector('002-').expect, 'status 0 with no body does not answer an approval-required');
  assert.deepEqual(checkAnswer(answer(403, '{"a":1}', [['x-a', '1']]), deny), { status: 403, headers: [['x-a', '1']], body: { a: 1 } });
});

/** A well-formed allow as a module's `decide-json` writes it: vector 058's, with `over` in the allowance. */
const allow = (over = {}) => {
  const v = vector('058-').expect;
  return { ...v, verdict: { ...v.verdict, ...over } };
};

test("a well-formed module decision reads as the Rust JSON", () => {
  // An allow's keys are in the Rust order in the vector file.
  const text = JSON.stringify(vector('058-').expect);
  assert.equal(JSON.stringify(readDecision(text)), text);
});

test('malformed module decisions are refused, each with its reason', () => {
  const refused = (d, why) => {
    const text = typeof d === 'string' ? d : JSON.stringify(d);
    assert.throws(() => readDecision(text), (e) => e instanceof InvalidOutput && e.message === why, why);
  };
  const { principal: p, action: a } = allow().verdict;
  /** The allow's text with its params written as `params`. */
  const withParams = (params) => JSON.stringify(allow()).replace('"params":{}', `"params":${params}`);
  assert.ok(withParams('[]').includes('"params":[]'));
  refused(allow({ principal: { ...p, subject: '' } }), 'an allow without a subject');
  refused(allow({ forward_headers: [['x-a', 'b\r\nset-cookie: x']] }), 'header `x-a` is not a valid HTTP header');
  refused(allow({ forward_headers: [['bad name', 'v']] }), 'header `bad name` is not a valid HTTP header');
  refused(allow({ consume: { token_id: '', expires_at: 1 } }), 'a single-use token without an id');
  refused(allow({ consume: { token_id: 'a', expires_at: 2 ** 60 } }), 'expires_at (1152921504606846976) is out of range');
  refused(withParams('[]'), "the action's params are not a JSON object");
  refused(allow({ action: { ...a, name: '' } }), 'an action without a name');
  refused(withParams('{"n":9007199254740993}'), 'the integer 9007199254740993 is beyond what JavaScript represents exactly');
  // The module's order ("10" before "9"), but JavaScript moves integer-like keys into numeric order.
  refused(withParams('{"10":1,"9":2}'), 'a member is named as an array index, which JavaScript would reorder');
  refused({ ...allow(), reasons: Array(65).fill('p') }, 'reasons has 65 entries');
  refused({ ...allow(), policy_hash: 'x'.repeat(64 * 1024 + 1) }, 'the policy hash has 65537 bytes');
  refused({ verdict: { kind: 'deny', code: 'no-such-code', message: 'm' }, reasons: [], policy_hash: 'h' }, 'the denial code is unknown');
  const c = vector('002-').expect.verdict;
  const challenge = (details, obligation = {}) => ({
    verdict: {
      kind: 'approval-required',
      requester: p,
      action: c.action,
      authorization_details: details,
      obligation: { approvers: ['group:x'], quorum: 1, ttl_seconds: 1, grant: 'once', window_seconds: 0, reason_required: false, message: '', ...obligation },
    },
    reasons: [],
    policy_hash: 'h',
  });
  assert.equal(readDecision(JSON.stringify(challenge([{ a: 1 }]))).verdict.authorization_details[0].a, 1);
  assert.deepEqual(
    readDecision(JSON.stringify(challenge([], { approvers: ['group:owner@tenant', 'user:carol', 'subject'] }))).verdict.obligation.approvers,
    ['group:owner@tenant', 'user:carol', 'subject'],
  );
  refused(challenge({ a: 1 }), 'authorization_details is not an array');
  const cutShort = JSON.stringify(challenge([{ a: 1 }]));
  assert.ok(cutShort.includes('[{"a":1}]'));
  refused(cutShort.replace('[{"a":1}]', '[{"a":'), 'the decision is not JSON');
  const details = JSON.stringify(challenge([{ amount: 1 }]));
  assert.ok(details.includes('"amount":1'));
  refused(details.replace('"amount":1', '"amount":9007199254740993'), 'the integer 9007199254740993 is beyond what JavaScript represents exactly');
  refused(challenge([], { approvers: [] }), 'an obligation without approvers or quorum');
  refused(challenge([], { quorum: 0 }), 'an obligation without approvers or quorum');
  refused(challenge([], { quorum: 33 }), 'an obligation with a quorum of 33');
  refused(challenge([], { ttl_seconds: 0 }), 'an obligation that expires at once');
  refused(challenge([], { grant: 'window' }), 'a window grant with a window of 0 seconds');
  refused(challenge([], { window_seconds: 30 }), 'a once grant with a window of 30 seconds');
  assert.equal(readDecision(JSON.stringify(challenge([], { quorum: 32, grant: 'window', window_seconds: 30 }))).verdict.obligation.quorum, 32);
  refused(challenge([], { approvers: ['group:'] }), 'approver `group:` should be `group:NAME`, `group:NAME@tenant`, `user:SUBJECT` or `subject`');
  refused(challenge([{ pad: 'x'.repeat(64 * 1024) }]), 'authorization_details has 65548 bytes');
});

test('a decision in JSON form must have exactly the Rust fields', () => {
  const d = { verdict: { kind: 'deny', code: 'policy-forbidden', message: 'no' }, reasons: ['p'], policy_hash: 'h' };
  assert.deepEqual(checkDecision(d), d);
  assert.throws(() => checkDecision({ ...d, extra: 1 }), /the decision has an unknown field `extra`/);
  assert.throws(() => checkDecision({ ...d, verdict: { kind: 'allow', principal: {} } }), /the allowance lacks `action`$/);
  assert.throws(() => checkDecision(null), /the decision is not an object/);
  const c = vector('002-').expect;
  assert.throws(
    () => checkDecision({ ...c, verdict: { ...c.verdict, obligation: { ...c.verdict.obligation, approvers: ['admins'] } } }),
    (e) => e.message === 'approver `admins` should be `group:NAME`, `group:NAME@tenant`, `user:SUBJECT` or `subject`',
  );
  // A principal reads as serde reads it: only entity_type, subject and issuer are required.
  const once = vector('058-').expect;
  const short = { entity_type: 'User', subject: 'bob', issuer: 'https://greenlight.test' };
  assert.deepEqual(checkDecision({ ...once, verdict: { ...once.verdict, principal: short } }).verdict.principal, {
    ...short,
    client_id: '',
    scopes: [],
    groups: [],
    roles: [],
    tenant: '',
    issuer: 'https://greenlight.test',
  });
});

test('a deny names its issuer as serde writes it: after the message, only when present', () => {
  const named = {
    verdict: { kind: 'deny', code: 'token-unknown-key', message: 'm', issuer: 'https://uri.example' },
    reasons: [],
    policy_hash: 'h',
  };
  const text = '{"verdict":{"kind":"deny","code":"token-unknown-key","message":"m","issuer":"https://uri.example"},"reasons":[],"policy_hash":"h"}';
  assert.equal(JSON.stringify(checkDecision(named)), text);
  assert.equal(JSON.stringify(denied('token-unknown-key', 'm', 'h', 'https://uri.example')), text);
  // Absent or null: no issuer, and none written.
  const bare = '{"verdict":{"kind":"deny","code":"policy-forbidden","message":"m"},"reasons":[],"policy_hash":"h"}';
  for (const verdict of [{ kind: 'deny', code: 'policy-forbidden', message: 'm' }, { kind: 'deny', code: 'policy-forbidden', message: 'm', issuer: null }]) {
    assert.equal(JSON.stringify(checkDecision({ verdict, reasons: [], policy_hash: 'h' })), bare);
  }
  assert.equal(JSON.stringify(denied('policy-forbidden', 'm', 'h')), bare);
  assert.throws(() => checkDecision({ ...named, verdict: { ...named.verdict, issuer: 5 } }), /the denial's issuer is not a string/);
  // From the module's decide-json: as serde writes it, the issuer only when present.
  assert.equal(JSON.stringify(readDecision(text)), text);
  assert.equal(JSON.stringify(readDecision(bare)), bare);
});
