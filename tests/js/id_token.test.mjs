// OpenID Connect ID tokens (WIT 0.7.0, `authenticate-id-token`) in the Node
// binding: `policy.authenticateIdToken` signs a person in for a relying
// party (`portal-client`) that sent a `nonce`, through the policy's worker
// thread, with the issuers, keys and claim mapping of access tokens but the
// ID token's own rules (OpenID Connect Core 1.0 §3.1.3.7): its audience and
// `nonce`, never an access token's `typ`. Refusals throw DenialError as
// `authenticate` does. The tokens are ID tokens of tests/bundles/tokens'
// EdDSA issuer (`https://ed.example`, whose access tokens must be `typ`
// `at+jwt`), signed here with tests/keys/ed.pem.

import assert from 'node:assert/strict';
import { createPrivateKey, createPublicKey, sign } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { DenialError, Engine } from '../../bindings/js/src/index.js';
import { GEN_DIR } from '../../bindings/js/src/engine.js';

const root = resolve(import.meta.dirname, '..', '..');
const BUNDLE = join(root, 'tests/bundles/tokens');
const ISSUER = 'https://ed.example';
const CLIENT = 'portal-client';
const NONCE = 'n-123';
const NOW = 1767225600;
/** When the person signed in: before the token was issued. */
const SIGNED_IN = NOW - 30;
const KEY = createPrivateKey(readFileSync(join(root, 'tests/keys/ed.pem')));

const b64u = (v) => Buffer.from(JSON.stringify(v)).toString('base64url');

/**
 * An ID token of `https://ed.example` for alice, issued to the portal five
 * seconds before `NOW` with its nonce; `claims` are added (a value
 * `undefined` removes one), `typ` is the header's (`undefined`: none).
 */
function idToken({ typ = 'JWT', ...claims } = {}) {
  const body = { iss: ISSUER, aud: CLIENT, sub: 'alice', nonce: NONCE, iat: NOW - 5, exp: NOW + 300, auth_time: SIGNED_IN, groups: ['finance'], ...claims };
  const header = { alg: 'EdDSA', kid: 'ed-1', ...(typ === undefined ? {} : { typ }) };
  const input = `${b64u(header)}.${b64u(body)}`; // JSON.stringify leaves out what is undefined
  return `${input}.${sign(null, Buffer.from(input), KEY).toString('base64url')}`;
}

/** The vector whose file name starts with `prefix`. */
function vector(prefix) {
  const name = readdirSync(join(root, 'tests/vectors')).find((n) => n.startsWith(prefix));
  return JSON.parse(readFileSync(join(root, 'tests/vectors', name), 'utf8'));
}

/** Asserts `f` throws a DenialError with exactly this code, message and issuer. */
function denies(f, code, message, issuer = null) {
  assert.throws(f, (e) => {
    assert.ok(e instanceof DenialError, String(e));
    assert.deepEqual([e.code, e.denial, e.issuer], [code, message, issuer]);
    return true;
  });
}

/** The principal `authenticateIdToken` gives for alice, signed in to the portal. */
const alice = (groups) => ({ entity_type: 'User', subject: 'alice', client_id: CLIENT, scopes: [], groups, roles: [], tenant: '', issuer: ISSUER });

const engine = await Engine.load();
after(() => engine.close());

describe('authenticateIdToken', () => {
  let policy;
  before(() => {
    policy = engine.loadBundleDir(BUNDLE);
  });
  after(() => policy.close());
  const refused = (token, code, message, { clientId = CLIENT, nonce = NONCE, now = NOW } = {}) =>
    denies(() => policy.authenticateIdToken(token, clientId, nonce, now), code, message);

  test("the signing key is the issuer's", () => {
    const [key] = JSON.parse(readFileSync(join(BUNDLE, 'ed.jwks.json'), 'utf8')).keys;
    assert.deepEqual([key.kid, key.x], ['ed-1', createPublicKey(KEY).export({ format: 'jwk' }).x]);
  });

  test("a valid ID token gives the person's credential", () => {
    // `typ` `JWT` passes although the issuer's access tokens must be
    // `at+jwt`: an ID token is checked with its own rules. The client is
    // the relying party, and a sign-in is meant for approving.
    assert.deepEqual(policy.authenticateIdToken(idToken(), CLIENT, NONCE, NOW), {
      principal: alice(['finance']),
      expires_at: NOW + 300,
      auth_time: SIGNED_IN,
      approver: true,
    });
  });

  test('a token without typ, auth_time or groups is accepted too', () => {
    assert.deepEqual(policy.authenticateIdToken(idToken({ typ: undefined, auth_time: undefined, groups: undefined }), CLIENT, NONCE, BigInt(NOW)), {
      principal: alice([]),
      expires_at: NOW + 300,
      auth_time: null,
      approver: true,
    });
  });

  test('a wrong nonce is refused', () => {
    const message = "the ID token's `nonce` is not the one sent with this sign-in";
    refused(idToken({ nonce: 'n-456' }), 'token-invalid-claim', message);
    // So is the right token checked against another sign-in's nonce.
    refused(idToken(), 'token-invalid-claim', message, { nonce: 'n-456' });
  });

  test('an audience not naming the client is refused', () => {
    const message = "the ID token's audience does not include `portal-client`";
    refused(idToken({ aud: 'other-client' }), 'token-wrong-audience', message);
    // The access tokens' audience is not the relying party either.
    refused(idToken({ aud: ['https://api.test', 'other-client'] }), 'token-wrong-audience', message);
    // The right token, for another relying party.
    refused(idToken(), 'token-wrong-audience', "the ID token's audience does not include `other-client`", { clientId: 'other-client' });
  });

  test('an azp naming another client is refused', () => {
    refused(idToken({ aud: [CLIENT, 'other-client'], azp: 'other-client' }), 'token-wrong-audience', 'the ID token was issued to `other-client` (`azp`), not `portal-client`');
    // Several audiences with `azp` naming the relying party: accepted.
    const { principal } = policy.authenticateIdToken(idToken({ aud: [CLIENT, 'other-client'], azp: CLIENT }), CLIENT, NONCE, NOW);
    assert.deepEqual([principal.subject, principal.client_id], ['alice', CLIENT]);
  });

  test("the issuer's leeway applies, and exp, iat and nonce are required", () => {
    // `https://ed.example` has the default leeway of 60 seconds.
    const exp = NOW + 300;
    assert.equal(policy.authenticateIdToken(idToken(), CLIENT, NONCE, exp + 59).expires_at, exp);
    refused(idToken(), 'token-expired', `the token expired at ${exp}`, { now: exp + 60 });
    for (const claim of ['exp', 'iat', 'nonce']) {
      refused(idToken({ [claim]: undefined }), 'token-missing-claim', `claim \`${claim}\` is missing or not of the right type`);
    }
  });

  test('an access token is not an ID token', () => {
    const message = 'an access token (`typ` `at+jwt`) is not an ID token';
    refused(idToken({ typ: 'at+jwt' }), 'token-wrong-type', message);
    // A real access token of the issuer (tests/vectors/043), which
    // `authenticate` accepts.
    const access = vector('043-');
    const token = access.request.http.headers.find(([k]) => k === 'authorization')[1].replace(/^Bearer /, '');
    assert.equal(policy.authenticate(token, access.now).principal.subject, 'bob');
    refused(token, 'token-wrong-type', message, { now: access.now });
  });

  test('an empty nonce or client id is refused', () => {
    const message = "an ID token is checked for a relying party's `client_id` and `nonce`; both must be given";
    refused(idToken(), 'request-invalid', message, { nonce: '' });
    refused(idToken(), 'request-invalid', message, { clientId: '' });
  });

  test('a time that is not Unix seconds is refused', () => {
    assert.throws(() => policy.authenticateIdToken(idToken(), CLIENT, NONCE, -1), {
      name: 'TypeError',
      message: 'now must be a non-negative integer of Unix seconds',
    });
  });

  test('a new worker after close answers the same', () => {
    policy.close();
    assert.equal(policy.authenticateIdToken(idToken(), CLIENT, NONCE, NOW).principal.subject, 'alice');
  });
});

test('the call reaches the module', async () => {
  // The hostile module refuses every ID token with a bad signature.
  const defaults = JSON.parse(readFileSync(join(GEN_DIR, 'default.json'), 'utf8'));
  const path = process.env.GREENLIGHT_HOSTILE_WASM ?? join(dirname(defaults.wasm), 'greenlight_test_hostile.wasm');
  const hostile = await Engine.load(path);
  const policy = hostile.loadBundle([]);
  try {
    denies(() => policy.authenticateIdToken('t', CLIENT, NONCE, NOW), 'token-bad-signature', 'hostile');
  } finally {
    policy.close();
    hostile.close();
  }
});
