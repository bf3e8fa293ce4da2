// Contract 0.6.0 in the Node binding: principal attributes mapped from
// claims (`attributes`, name -> `{kind: value}`) and the RFC 9470 verdict
// `step-up-required`. Their JSON form (byte for byte what serde writes),
// the strict reading of it and of what the module returns, the round trip
// through the WIT shapes jco lowers; then the middleware on
// tests/bundles/claims over real HTTP with tokens signed here by
// tests/keys/ed.pem (a step-up is answered 401 by the component, never
// asked of the approval service), and `evaluateAs` with vouched attributes.

import assert from 'node:assert/strict';
import { createPrivateKey, sign } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createServer } from 'node:http';
import { join, resolve } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { Engine, needsService, withGreenlight } from '../../bindings/js/src/index.js';
import { checkDecision, cutUtf8, InvalidOutput, readDecision, toWit } from '../../bindings/js/src/decision.js';
import { checkAnswer } from '../../bindings/js/src/respond.js';

const root = resolve(import.meta.dirname, '..', '..');
const NOW = 1767225600;
const CLAIMS = join(root, 'tests/bundles/claims');
const JSON_HEADERS = [['content-type', 'application/json'], ['cache-control', 'no-store']];

/** A principal with one attribute of every kind, given out of order. */
const CAROL = {
  entity_type: 'User',
  subject: 'carol',
  client_id: 'books',
  scopes: ['reports'],
  groups: [],
  roles: [],
  tenant: '',
  issuer: 'https://idp.claims.test',
  attributes: {
    signed_in: { datetime: 1767225000 },
    realm_roles: { set: ['auditor', 'reader'] },
    level: { long: -3 },
    email_verified: { bool: true },
    department: { string: 'finance' },
  },
};
const CAROL_TEXT =
  '{"entity_type":"User","subject":"carol","client_id":"books","scopes":["reports"],"groups":[],"roles":[],"tenant":"",' +
  '"issuer":"https://idp.claims.test","attributes":{"department":{"string":"finance"},"email_verified":{"bool":true},' +
  '"level":{"long":-3},"realm_roles":{"set":["auditor","reader"]},"signed_in":{"datetime":1767225000}}}';

const ACTION = { name: 'account.close', resource_type: 'Account', resource_id: 'a-1', params: {}, digest: 'hxWiaR0GXttug0557US709USE4ayOrxeVJX-tltl2tk' };

/** An allow for `principal`, in JSON form. */
function allowFor(principal) {
  return {
    verdict: {
      kind: 'allow',
      principal,
      action: ACTION,
      approval_id: null,
      consume: null,
      forward_headers: [['x-greenlight-subject', principal.subject], ['x-greenlight-issuer', principal.issuer], ['x-greenlight-action', ACTION.name]],
    },
    reasons: ['account-close'],
    policy_hash: 'h',
  };
}

const STEP_UP = {
  verdict: { kind: 'step-up-required', acr_values: ['urn:example:mfa', 'urn:example:hwk'], max_age: 300, message: 'sign in again' },
  reasons: ['refund'],
  policy_hash: 'h',
};

const refused = (d, why) => assert.throws(() => checkDecision(d), (e) => e instanceof InvalidOutput && e.message === why, why);
/** `allowFor(CAROL)` with `attributes` instead of Carol's. */
const withAttributes = (attributes) => allowFor({ ...CAROL, attributes });

describe('the new decision shapes', () => {
  test('a principal with every attribute kind prints as serde writes it: after the issuer, sorted by name', () => {
    const d = checkDecision(allowFor(CAROL));
    assert.equal(JSON.stringify(d.verdict.principal), CAROL_TEXT);
    assert.deepEqual(Object.keys(d.verdict.principal.attributes), ['department', 'email_verified', 'level', 'realm_roles', 'signed_in']);
    // Read back from its own text: the same bytes.
    assert.equal(JSON.stringify(checkDecision(JSON.parse(JSON.stringify(d)))), JSON.stringify(d));
  });

  test('names are sorted by their UTF-8 bytes, as a Rust BTreeMap', () => {
    // U+FF5A sorts before U+1F600 in UTF-8 but after it in UTF-16 (JavaScript's sort).
    const d = checkDecision(withAttributes({ '😀': { string: 'b' }, 'ｚ': { string: 'a' }, Z: { string: 'c' }, _: { string: 'd' } }));
    assert.deepEqual(Object.keys(d.verdict.principal.attributes), ['Z', '_', 'ｚ', '😀']);
  });

  test('the attributes are omitted when there are none, and an empty object reads as none', () => {
    const { attributes, ...bare } = CAROL;
    const text = CAROL_TEXT.replace(/,"attributes":.*\}$/, '}');
    assert.equal(JSON.stringify(checkDecision(allowFor(bare)).verdict.principal), text);
    assert.equal(JSON.stringify(checkDecision(withAttributes({})).verdict.principal), text);
    assert.deepEqual(toWit(checkDecision(allowFor(bare))).verdict.val.principal.attributes, []);
  });

  test('the attributes go to the module as a sorted WIT list, long and datetime as BigInt, and come back the same as JSON', () => {
    const d = checkDecision(allowFor(CAROL));
    const wit = toWit(d);
    assert.deepEqual(wit.verdict.val.principal.attributes, [
      { name: 'department', value: { tag: 'string', val: 'finance' } },
      { name: 'email_verified', value: { tag: 'bool', val: true } },
      { name: 'level', value: { tag: 'long', val: -3n } },
      { name: 'realm_roles', value: { tag: 'set', val: ['auditor', 'reader'] } },
      { name: 'signed_in', value: { tag: 'datetime', val: 1767225000n } },
    ]);
    assert.equal(JSON.stringify(readDecision(JSON.stringify(d))), JSON.stringify(d));
  });

  test('a step-up-required prints in the Rust key order, max_age null when none', () => {
    assert.equal(
      JSON.stringify(checkDecision(STEP_UP)),
      '{"verdict":{"kind":"step-up-required","acr_values":["urn:example:mfa","urn:example:hwk"],"max_age":300,' +
        '"message":"sign in again"},"reasons":["refund"],"policy_hash":"h"}',
    );
    const anyAge = { ...STEP_UP, verdict: { ...STEP_UP.verdict, acr_values: [], max_age: null } };
    assert.equal(
      JSON.stringify(checkDecision(anyAge)),
      '{"verdict":{"kind":"step-up-required","acr_values":[],"max_age":null,"message":"sign in again"},"reasons":["refund"],"policy_hash":"h"}',
    );
    // As serde reads an `Option`: an absent max_age is none.
    const { max_age, ...absent } = anyAge.verdict;
    assert.deepEqual(checkDecision({ ...anyAge, verdict: absent }), anyAge);
  });

  test('a step-up-required goes to the module as WIT and comes back the same as JSON', () => {
    const wit = toWit(checkDecision(STEP_UP));
    assert.deepEqual(wit.verdict, {
      tag: 'step-up-required',
      val: { acrValues: ['urn:example:mfa', 'urn:example:hwk'], maxAge: 300n, message: 'sign in again' },
    });
    assert.deepEqual(readDecision(JSON.stringify(STEP_UP)), STEP_UP);
    const anyAge = checkDecision({ ...STEP_UP, verdict: { ...STEP_UP.verdict, max_age: null } });
    assert.equal(toWit(anyAge).verdict.val.maxAge, undefined);
    assert.equal(readDecision(JSON.stringify(anyAge)).verdict.max_age, null);
  });

  test('a step-up-required never needs the approval service', () => {
    assert.equal(needsService(checkDecision(STEP_UP)), false);
  });

  test("a module's pass-through for a step-up-required is refused with the Rust host reason", () => {
    assert.throws(
      () => checkAnswer({ status: 0, headers: [], body: undefined }, STEP_UP),
      (e) => e instanceof InvalidOutput && e.message === 'status 0 with no body does not answer a step-up-required',
    );
  });

  test('attributes are read strictly, each refusal with its reason', () => {
    refused(withAttributes({ level: { number: 3 } }), 'attribute `level` has the unknown kind `number`');
    refused(withAttributes({ level: { long: true } }), 'attribute `level` is not a long (an integer)');
    refused(withAttributes({ level: { long: 1.5 } }), 'attribute `level` is not a long (an integer)');
    refused(withAttributes({ level: { long: '3' } }), 'attribute `level` is not a long (an integer)');
    refused(withAttributes({ level: { long: 2 ** 53 } }), 'attribute `level` (9007199254740992) is out of range');
    refused(withAttributes({ level: { long: -(2 ** 53) } }), 'attribute `level` (-9007199254740992) is out of range');
    refused(withAttributes({ realm_roles: { set: ['a', 1] } }), 'attribute `realm_roles` is not a set of strings');
    refused(withAttributes({ realm_roles: { set: 'a' } }), 'attribute `realm_roles` is not a set of strings');
    refused(withAttributes({ realm_roles: { set: Array(65).fill('a') } }), 'attribute `realm_roles` has 65 entries');
    refused(withAttributes({ department: { string: 5 } }), 'attribute `department` is not a string');
    refused(withAttributes({ email_verified: { bool: 'true' } }), 'attribute `email_verified` is not a bool');
    refused(withAttributes({ signed_in: { datetime: -1 } }), 'attribute `signed_in` (-1) is out of range');
    refused(withAttributes({ signed_in: { datetime: 1.5 } }), 'attribute `signed_in` is not a datetime (whole Unix seconds)');
    refused(withAttributes({ level: { long: 3, string: 'x' } }), 'attribute `level` has 2 members; it needs one of `string`, `long`, `bool`, `set`, `datetime`');
    refused(withAttributes({ level: {} }), 'attribute `level` has 0 members; it needs one of `string`, `long`, `bool`, `set`, `datetime`');
    refused(withAttributes({ level: 3 }), 'attribute `level` is not an object');
    refused(withAttributes({ '': { long: 3 } }), 'an attribute without a name');
    refused(withAttributes({ 7: { long: 3 } }), 'attribute name `7` is an array index, which JavaScript cannot keep in order');
    refused(withAttributes([]), 'the attributes are not an object');
    refused(withAttributes(null), 'the attributes are not an object');
    refused(withAttributes(Object.fromEntries(Array.from({ length: 65 }, (_, i) => [`a${i}`, { bool: true }]))), 'attributes has 65 entries');
    // The largest values JavaScript prints exactly are accepted.
    const edge = checkDecision(withAttributes({ level: { long: -(2 ** 53 - 1) }, signed_in: { datetime: 2 ** 53 - 1 } }));
    assert.equal(JSON.stringify(edge.verdict.principal.attributes), '{"level":{"long":-9007199254740991},"signed_in":{"datetime":9007199254740991}}');
  });

  test("the module's attributes are read strictly: a name given twice, an unknown case, a value beyond 2^53", () => {
    const text = JSON.stringify(checkDecision(allowFor(CAROL)));
    const refusedText = (t, why) => assert.throws(() => readDecision(t), (e) => e instanceof InvalidOutput && e.message === why, why);
    const DEPT = '"department":{"string":"finance"}';
    assert.ok(text.includes(DEPT));
    refusedText(text.replace(DEPT, `${DEPT},"department":{"string":"sales"}`), 'the decision names a member twice in one object');
    refusedText(text.replace(DEPT, '"department":{"float":1}'), 'attribute `department` has the unknown kind `float`');
    refusedText(text.replace('"level":{"long":-3}', '"level":{"long":1152921504606846977}'), 'the integer 1152921504606846977 is beyond what JavaScript represents exactly');
    refusedText(text.replace('"level":{"long":-3}', '"level":{"long":9007199254740992}'), 'attribute `level` (9007199254740992) is out of range');
    // The module's attributes in another order are sorted, as the Rust host's BTreeMap.
    const attrs = CAROL_TEXT.slice(CAROL_TEXT.indexOf('"attributes":') + '"attributes":'.length, -1);
    const reversed = JSON.stringify(Object.fromEntries(Object.entries(JSON.parse(attrs)).reverse()));
    assert.notEqual(reversed, attrs);
    assert.equal(JSON.stringify(readDecision(text.replace(attrs, reversed)).verdict.principal), CAROL_TEXT);
  });

  test('a step-up-required is read strictly', () => {
    refused({ ...STEP_UP, verdict: { ...STEP_UP.verdict, max_age: -1 } }, 'max_age (-1) is out of range');
    refused({ ...STEP_UP, verdict: { ...STEP_UP.verdict, max_age: '300' } }, 'max_age is not an integer');
    refused({ ...STEP_UP, verdict: { ...STEP_UP.verdict, acr_values: 'urn:example:mfa' } }, 'acr values is not a list');
    refused({ ...STEP_UP, verdict: { ...STEP_UP.verdict, acr_values: [1] } }, 'an entry of acr values is not a string');
    refused({ ...STEP_UP, verdict: { ...STEP_UP.verdict, extra: 1 } }, 'the step-up has an unknown field `extra`');
    const { message, ...noMessage } = STEP_UP.verdict;
    refused({ ...STEP_UP, verdict: noMessage }, 'the step-up lacks `message`');
  });
});

describe("a module's decide-json answer is read as strictly as the Rust host reads it", () => {
  const text = JSON.stringify(checkDecision(allowFor(CAROL)));
  const refusedText = (t, why) => assert.throws(() => readDecision(t), (e) => e instanceof InvalidOutput && e.message === why, why);
  const TWICE = 'the decision names a member twice in one object';
  /** The allow with `params` in place of its empty params. */
  const withParams = (params) => {
    assert.ok(text.includes('"params":{}'));
    return text.replace('"params":{}', `"params":${params}`);
  };

  test('an honest answer is read as it was written', () => {
    assert.equal(JSON.stringify(readDecision(text)), text);
    // Array-index names where JavaScript keeps them: first, in numeric order.
    const params = withParams('{"9":1,"10":2,"amount":50.5,"note":"\\u0001 \\"q\\" é"}');
    assert.equal(JSON.stringify(readDecision(params)), params);
  });

  test("serde's ways of writing a number are read by value, as the Rust host reads them", () => {
    // serde_json (ryu) writes 0.000005 as 5e-6 and 1e21 without a `+`; JavaScript prints them otherwise.
    const d = readDecision(withParams('{"small":5e-6,"big":1e21,"whole":1.0,"zero":-0,"spaced" : 1}'));
    assert.deepEqual(d.verdict.action.params, { small: 0.000005, big: 1e21, whole: 1, zero: -0, spaced: 1 });
    // Escapes and spaces are only writing.
    assert.deepEqual(readDecision(text.replace('"reasons":["account-close"]', '"reasons": [ "\\u0061ccount-close" ]')).reasons, ['account-close']);
  });

  test('what is not a JSON decision is refused', () => {
    refusedText(42, 'the decision is not a string');
    refusedText('allow', 'the decision is not JSON');
    refusedText(withParams('{"amount":NaN}'), 'the decision is not JSON');
    refusedText(withParams('{"amount":Infinity}'), 'the decision is not JSON');
    refusedText(`${text} x`, 'the decision is not JSON');
    refusedText('[]', 'the decision is not an object');
  });

  test('a member named twice is refused wherever it is, however it is written', () => {
    assert.ok(text.startsWith('{"verdict":'));
    refusedText(text.replace('{"verdict":', '{"verdict":{"kind":"deny","code":"policy-forbidden","message":"no"},"verdict":'), TWICE);
    refusedText(withParams('{"amount":1,"amount":2}'), TWICE);
    // Written differently elsewhere (the slower reading), the count still tells.
    refusedText(withParams('{"amount":1,"\\u0061mount":2,"x":5e-6}'), TWICE);
    refusedText(withParams('{"a":":","a":"\\":"}'), TWICE);
  });

  test('a number or member name JavaScript would change is refused', () => {
    refusedText(withParams('{"amount":1e400}'), 'the number 1e400 is beyond a double');
    refusedText(withParams('{"amount":-1e400}'), 'the number -1e400 is beyond a double');
    refusedText(withParams('{"amount":9007199254740993}'), 'the integer 9007199254740993 is beyond what JavaScript represents exactly');
    refusedText(withParams('{"amount":-9007199254740993}'), 'the integer -9007199254740993 is beyond what JavaScript represents exactly');
    // The module's order ("10" before "9"), but JavaScript moves array indexes into numeric order.
    refusedText(withParams('{"10":1,"9":2}'), 'a member is named as an array index, which JavaScript would reorder');
    refusedText(withParams('{"b":1,"7":2}'), 'a member is named as an array index, which JavaScript would reorder');
    // The largest integers JavaScript holds exactly are read.
    assert.equal(readDecision(withParams('{"n":9007199254740991,"m":-9007199254740991}')).verdict.action.params.n, 2 ** 53 - 1);
  });

  test('null is not an absent principal field', () => {
    for (const field of ['client_id', 'scopes', 'groups', 'roles', 'tenant']) {
      const at = `"${field}":`;
      assert.ok(text.includes(at), field);
      const nulled = text.replace(new RegExp(`"${field}":(\\[[^\\]]*\\]|"[^"]*")`), `"${field}":null`);
      assert.notEqual(nulled, text, field);
      const why = { client_id: 'the client id is not a string', tenant: 'the tenant is not a string' }[field] ?? `${field} is not a list`;
      refusedText(nulled, why);
    }
  });

  test('a decision longer than any host reads is refused before it is parsed', () => {
    const long = withParams(`{"pad":"${'x'.repeat(1 << 20)}"}`);
    refusedText(long, 'the decision is longer than 1048576 bytes');
    // Counted in UTF-8 bytes, not in JavaScript's UTF-16 units.
    refusedText(withParams(`{"pad":"${'é'.repeat(1 << 19)}"}`), 'the decision is longer than 1048576 bytes');
  });

  test('a lone surrogate is refused in a value and in a member name', () => {
    refusedText(withParams('{"note":"\\ud800"}'), 'a string holds a lone surrogate');
    refusedText(withParams('{"\\udfff":1}'), 'a member name holds a lone surrogate');
    // A pair is a character, and written as itself.
    assert.equal(readDecision(withParams('{"note":"😀"}')).verdict.action.params.note, '😀');
  });

  test('a member name in the reason is cut at 64 KiB, between characters', () => {
    const name = '😀'.repeat(40_000);
    const message = `the policy module returned a malformed decision: the decision has an unknown field \`${name}\``;
    const cut = cutUtf8(message, 64 * 1024);
    const start = 'the policy module returned a malformed decision: the decision has an unknown field `';
    assert.equal(cut, start + '😀'.repeat((64 * 1024 - start.length) / 4 | 0));
    assert.equal(cutUtf8('short', 64 * 1024), 'short');
  });

  test('nesting is read as deep as serde_json reads it, and no deeper', () => {
    // The decision, its verdict, the action and its params are four levels.
    const nested = (n) => withParams(`{"a":${'['.repeat(n)}${']'.repeat(n)}}`);
    assert.equal(JSON.stringify(readDecision(nested(123))), nested(123));
    refusedText(nested(124), 'it nests more than 127 arrays or objects');
    refusedText(nested(100_000), 'it nests more than 127 arrays or objects');
  });

  test("the params and the authorization details are held to the size of the module's strings", () => {
    const pad = (n) => withParams(`{"pad":"${'x'.repeat(n)}"}`);
    assert.equal(readDecision(pad(65536 - 10)).verdict.action.params.pad.length, 65526);
    refusedText(pad(65536 - 9), "the action's params has 65537 bytes");
  });
});

const engine = await Engine.load();
after(() => engine.close());

describe('the component answers a step-up-required', () => {
  let policy;
  before(() => {
    policy = engine.loadBundleDir(CLAIMS);
  });
  after(() => policy.close());

  test('with RFC 9470: 401, insufficient_user_authentication, acr_values and max_age', () => {
    assert.deepEqual(policy.respond(STEP_UP, 'https://gl.example'), {
      status: 401,
      headers: [
        ['www-authenticate', 'Bearer error="insufficient_user_authentication", error_description="sign in again", acr_values="urn:example:mfa urn:example:hwk", max_age=300'],
        ...JSON_HEADERS,
      ],
      body: {
        error: 'insufficient_user_authentication',
        error_description: 'sign in again',
        code: 'step-up-required',
        acr_values: 'urn:example:mfa urn:example:hwk',
        max_age: 300,
      },
    });
  });

  test('a step-up-required that cannot be a WIT value is answered 503', () => {
    const forged = { ...STEP_UP, verdict: { ...STEP_UP.verdict, max_age: 2 ** 60 } };
    assert.deepEqual(policy.respond(forged, 's'), {
      status: 503,
      headers: JSON_HEADERS,
      body: {
        error: 'temporarily_unavailable',
        error_description: 'the decision cannot be answered: max_age (1152921504606846976) is out of range',
        code: 'engine-invalid-output',
      },
    });
  });
});

describe('evaluateAs with vouched attributes on the claims bundle', () => {
  let policy;
  before(() => {
    policy = engine.loadBundleDir(CLAIMS);
  });
  after(() => policy.close());

  const READ = { token: '', action: 'report.read', resource_type: 'Report', resource_id: 'r-1' };
  const VOUCHED = {
    entity_type: 'User',
    subject: 'dave',
    issuer: 'https://idp.claims.test',
    attributes: { realm_roles: { set: ['auditor', 'reader'] }, level: { long: 2n }, department: { string: 'finance' } },
  };

  test('mapped attributes of their mapped types are accepted, in order, the rest defaulted', () => {
    const d = policy.evaluateAs(VOUCHED, READ, NOW);
    assert.equal(d.verdict.kind, 'allow', JSON.stringify(d));
    assert.deepEqual(d.reasons, ['report-read']);
    assert.equal(
      JSON.stringify(d.verdict.principal),
      '{"entity_type":"User","subject":"dave","client_id":"","scopes":[],"groups":[],"roles":[],"tenant":"",' +
        '"issuer":"https://idp.claims.test","attributes":{"department":{"string":"finance"},"email_verified":{"bool":false},' +
        '"level":{"long":2},"realm_roles":{"set":["auditor","reader"]}}}',
    );
  });

  test('the policy sees them: another department has no permit', () => {
    const d = policy.evaluateAs({ ...VOUCHED, attributes: { ...VOUCHED.attributes, department: { string: 'sales' } } }, READ, NOW);
    assert.deepEqual(d.verdict, {
      kind: 'deny',
      code: 'policy-no-permit',
      message: 'no policy permits `report.read` on `Report::r-1`',
    });
  });

  test('an attribute the bundle does not map is refused', () => {
    const d = policy.evaluateAs({ ...VOUCHED, attributes: { ...VOUCHED.attributes, admin: { bool: true } } }, READ, NOW);
    assert.deepEqual(d.verdict, {
      kind: 'deny',
      code: 'request-invalid',
      message: "the vouched subject's attribute `admin` is not one the bundle maps",
    });
  });

  test('an attribute of another type than its mapping is refused', () => {
    const d = policy.evaluateAs({ ...VOUCHED, attributes: { ...VOUCHED.attributes, level: { string: '2' } } }, READ, NOW);
    assert.deepEqual(d.verdict, {
      kind: 'deny',
      code: 'request-invalid',
      message: "the vouched subject's attribute `level` is a String, not a Long",
    });
  });

  test('a required attribute left out is refused', () => {
    const { department, ...rest } = VOUCHED.attributes;
    const d = policy.evaluateAs({ ...VOUCHED, attributes: rest }, READ, NOW);
    assert.deepEqual(d.verdict, {
      kind: 'deny',
      code: 'request-invalid',
      message: 'the vouched subject lacks the required attribute `department`',
    });
  });

  test('attributes of the wrong shape are a TypeError, never sent', () => {
    assert.throws(
      () => policy.evaluateAs({ ...VOUCHED, attributes: { level: { long: 1.5 } } }, READ, NOW),
      (e) => e instanceof TypeError && e.message === "the subject's attributes are malformed: attribute `level` is not a long (an integer)",
    );
    assert.throws(
      () => policy.evaluateAs({ ...VOUCHED, attributes: { level: { integer: 1 } } }, READ, NOW),
      (e) => e instanceof TypeError && e.message === "the subject's attributes are malformed: attribute `level` has the unknown kind `integer`",
    );
  });
});

/** An access token of https://idp.claims.test signed by tests/keys/ed.pem (kid `ed-1`), with `claims` added. */
const ED = createPrivateKey(readFileSync(join(root, 'tests/keys/ed.pem')));
function claimsToken(claims) {
  const b64u = (o) => Buffer.from(JSON.stringify(o)).toString('base64url');
  const header = b64u({ alg: 'EdDSA', kid: 'ed-1', typ: 'JWT' });
  const body = b64u({
    iss: 'https://idp.claims.test',
    aud: 'https://api.test',
    sub: 'carol',
    azp: 'books',
    iat: NOW - 60,
    exp: NOW + 600,
    'https://example.com/department': 'finance',
    ...claims,
  });
  return `${header}.${body}.${sign(null, Buffer.from(`${header}.${body}`), ED).toString('base64url')}`;
}

describe('the middleware on the claims bundle', () => {
  /** The stand-in approval service: counts every request it gets. */
  const asked = [];
  const service = createServer((req, res) => {
    asked.push(`${req.method} ${req.url}`);
    if (req.url === '/.well-known/jwks.json') {
      res.setHeader('content-type', 'application/json');
      res.end(readFileSync(join(CLAIMS, 'greenlight.jwks.json')));
    } else {
      res.statusCode = 500;
      res.end();
    }
  });
  const seen = [];
  let policy;
  let app;
  let base;
  const listen = (server) => new Promise((ok) => server.listen(0, '127.0.0.1', () => ok(`http://127.0.0.1:${server.address().port}`)));
  before(async () => {
    const serviceUrl = await listen(service);
    policy = engine.loadBundleDir(CLAIMS);
    const handler = withGreenlight({ policy, serviceUrl, now: () => NOW, log: (m) => seen.push(`log: ${m}`) }, (req, res) => {
      seen.push(req.greenlight);
      res.setHeader('content-type', 'application/json');
      res.end(JSON.stringify({ subject: req.headers['x-greenlight-subject'], body: req.body }));
    });
    await handler.ready;
    app = createServer(handler);
    base = await listen(app);
  });
  after(() => {
    app.close();
    service.close();
    policy.close();
  });

  const refund = async (token) => {
    const r = await fetch(`${base}/payments/p-1/refund`, {
      method: 'POST',
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
      body: JSON.stringify({ amount: 50 }),
    });
    return { status: r.status, challenge: r.headers.get('www-authenticate'), type: r.headers.get('content-type'), body: await r.json() };
  };

  test('a refund without acr gets the RFC 9470 step-up challenge, without asking the service', async () => {
    const before = asked.length;
    const seenBefore = seen.length;
    const message =
      '`payment.refund` on `Payment::p-1` needs a new sign-in: the token names no sign-in class (`acr`); one of `urn:example:mfa` is needed';
    assert.deepEqual(await refund(claimsToken({})), {
      status: 401,
      challenge: `Bearer error="insufficient_user_authentication", error_description="${message}", acr_values="urn:example:mfa", max_age=300`,
      type: 'application/json',
      body: {
        error: 'insufficient_user_authentication',
        error_description: message,
        code: 'step-up-required',
        acr_values: 'urn:example:mfa',
        max_age: 300,
      },
    });
    assert.deepEqual(asked.slice(before), [], 'the approval service was asked');
    assert.equal(seen.length, seenBefore, 'the handler was called');
  });

  test('the same refund with a recent multi-factor sign-in reaches the handler', async () => {
    const before = asked.length;
    const r = await refund(claimsToken({ acr: 'urn:example:mfa', auth_time: NOW - 10 }));
    assert.deepEqual(r, { status: 200, challenge: null, type: 'application/json', body: { subject: 'carol', body: { amount: 50 } } });
    assert.deepEqual(asked.slice(before), []);
    const decision = seen.at(-1);
    assert.deepEqual(decision.reasons, ['refund']);
    assert.deepEqual(decision.verdict.principal.attributes, {
      acr: { string: 'urn:example:mfa' },
      department: { string: 'finance' },
      email_verified: { bool: false },
      level: { long: 0 },
      realm_roles: { set: [] },
      signed_in: { datetime: NOW - 10 },
    });
  });

  test('a sign-in older than max_age gets the step-up challenge', async () => {
    const r = await refund(claimsToken({ acr: 'urn:example:mfa', auth_time: NOW - 301 }));
    const message = '`payment.refund` on `Payment::p-1` needs a new sign-in: the sign-in was 301 seconds ago, more than the 300 allowed';
    assert.deepEqual(r, {
      status: 401,
      challenge: `Bearer error="insufficient_user_authentication", error_description="${message}", acr_values="urn:example:mfa", max_age=300`,
      type: 'application/json',
      body: {
        error: 'insufficient_user_authentication', error_description: message, code: 'step-up-required',
        acr_values: 'urn:example:mfa', max_age: 300,
      },
    });
  });

  test('a token without the required department claim is refused token-missing-claim', async () => {
    const message = 'claim `https://example.com/department` (attribute `department`) is required and missing';
    assert.deepEqual(await refund(claimsToken({ 'https://example.com/department': undefined })), {
      status: 401,
      challenge: `Bearer error="invalid_token", error_description="${message.replaceAll('"', '\\"')}"`,
      type: 'application/json',
      body: { error: 'invalid_token', error_description: message, code: 'token-missing-claim' },
    });
  });

  test('only the service keys were fetched, once, and nothing was logged', () => {
    assert.deepEqual(asked, ['GET /.well-known/jwks.json']);
    assert.deepEqual(seen.filter((s) => typeof s === 'string'), []);
  });
});
