// `greenlight serve` on the real provider's claims: a namespaced claim and
// Keycloak-style nested roles mapped to typed attributes, a missing
// required claim refused by name, RFC 9470 step-up on the provider's
// `acr`, and an actor (RFC 8693 `act`) that policy refuses.
//
//   GREENLIGHT_BIN=target/debug/greenlight node --test tests/idp/

import { createHash } from 'node:crypto';
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { start } from './provider.mjs';
import { config, serve } from './greenlight.mjs';

const MAPPING = `
[principal.attributes.department]
claim = "https://example.com/department"
type = "String"
required = true

[principal.attributes.realm_roles]
path = "realm_access.roles"
type = "Set<String>"
default = []

[principal.attributes.actor]
path = "act.sub"
type = "String"

[[routes]]
method = "PUT"
path = "/docs/{id}"
action = "doc.write"
resource = { type = "Doc", id = "{id}" }
`;

const POLICY = `@id("read")
permit (principal, action == Action::"doc.read", resource)
when { principal.department == "finance" && principal.realm_roles.contains("reader") };

@id("write")
@acr("urn:example:mfa")
@max_age("600")
permit (principal, action == Action::"doc.write", resource);

@id("no-agent-writes")
forbid (principal, action == Action::"doc.write", resource) when { principal has actor };
`;

let idp;
let gl;

before(async () => {
  idp = await start();
  gl = await serve({ 'greenlight.toml': config(idp.issuer, false) + MAPPING, 'policy.cedar': POLICY });
});

after(async () => {
  await gl?.stop();
  await idp?.close();
});

async function decide(method, token) {
  const r = await fetch(`${gl.url}/v1/check`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ method, path: '/docs/d1', headers: { authorization: `Bearer ${token}` } }),
  });
  assert.equal(r.status, 200);
  return r.json();
}

/** The allow of `action` on `Doc::d1` for a client-credentials token of
 * `client` (its own subject) with these mapped attributes, by policy `reason`. */
function allowed(client, action, attributes, reason) {
  // RFC 8785 canonical JSON of an action without parameters: keys sorted.
  const canonical = `{"action":"${action}","params":{},"resource":{"id":"d1","type":"Doc"}}`;
  const digest = createHash('sha256').update(canonical).digest('base64url');
  return {
    verdict: {
      kind: 'allow',
      principal: {
        entity_type: 'User', subject: client, client_id: client, scopes: ['docs:read'],
        groups: [], roles: [], tenant: '', issuer: idp.issuer, attributes,
      },
      action: { name: action, resource_type: 'Doc', resource_id: 'd1', params: {}, digest },
      approval_id: null,
      consume: null,
      forward_headers: [
        ['x-greenlight-subject', client], ['x-greenlight-issuer', idp.issuer], ['x-greenlight-action', action],
      ],
    },
    reasons: [reason],
  };
}

const decided = ({ verdict, reasons }) => ({ verdict, reasons });

test('the provider\'s namespaced and nested claims are typed attributes', async () => {
  const d = await decide('GET', await idp.token('app-claims'));
  assert.deepEqual(decided(d), allowed('app-claims', 'doc.read', {
    department: { string: 'finance' },
    realm_roles: { set: ['offline_access', 'reader'] },
  }, 'read'));
});

test('a token without the required claim is refused, naming it', async () => {
  const d = await decide('GET', await idp.token('app-eddsa'));
  assert.deepEqual(d.verdict, {
    kind: 'deny',
    code: 'token-missing-claim',
    message: 'claim `https://example.com/department` (attribute `department`) is required and missing',
  });
});

test('a password sign-in is asked to step up; a multi-factor one writes', async () => {
  const weak = await decide('PUT', await idp.token('app-claims'));
  assert.deepEqual(weak.verdict, {
    kind: 'step-up-required',
    acr_values: ['urn:example:mfa'],
    max_age: 600,
    message: "`doc.write` on `Doc::d1` needs a new sign-in: the sign-in's class `urn:example:pwd` is not one of `urn:example:mfa`",
  });
  const strong = await decide('PUT', await idp.token('app-mfa'));
  assert.deepEqual(decided(strong), allowed('app-mfa', 'doc.write', {
    department: { string: 'finance' },
    realm_roles: { set: ['reader'] },
  }, 'write'));
});

test('an agent acting for the subject is seen by policy and refused', async () => {
  const read = await decide('GET', await idp.token('agent-claims'));
  assert.deepEqual(decided(read), allowed('agent-claims', 'doc.read', {
    actor: { string: 'agent-1' },
    department: { string: 'finance' },
    realm_roles: { set: ['reader'] },
  }, 'read'));
  const write = await decide('PUT', await idp.token('agent-claims'));
  assert.deepEqual(write.verdict, {
    kind: 'deny',
    code: 'policy-forbidden',
    message: '`doc.write` on `Doc::d1` is forbidden by policy `no-agent-writes`',
  });
});
