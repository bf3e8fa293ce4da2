// Decisions as plain objects in the JSON form of the Rust
// `greenlight_types::Decision` (crates/types/src/decision.rs): the same field
// names, kebab-case kinds and codes, `null` for an absent `approval_id` or
// `consume`, a deny's `issuer` only when present, approvers as their policy
// text, and the key order serde writes (the order of the Rust structs), so
// `JSON.stringify(decision)` is byte for byte what `greenlight check` prints.
// Everything a host acts on is a field: who acts (`principal`), on what
// (`action`, with its digest), under which approval (`approval_id`), which
// single-use token to consume (`consume`).
// What a policy module (or the approval service) returns is untrusted: its
// shape is checked here before anyone acts on it, as the Rust host checks it
// (host/src/convert.rs). The action's digest is passed through as given: it
// is checked once, in the Rust host, not recomputed here.

/**
 * @typedef {{string: string} | {long: number} | {bool: boolean} | {set: string[]} |
 *            {datetime: number}} AttributeValue
 *   A mapped principal attribute's value (the WIT `attribute-value`), as
 *   serde writes the Rust `AttributeValue`: one member naming its Cedar
 *   type. `long` is a safe integer (within ±(2^53 - 1)), `datetime` Unix
 *   seconds (0 to 2^53 - 1): JavaScript cannot print others exactly.
 * @typedef {Record<string, AttributeValue>} Attributes
 *   The attributes the bundle maps from claims (`[principal.attributes]`),
 *   by name, the keys in the Rust order (by UTF-8 bytes), e.g.
 *   `{department: {string: 'finance'}, level: {long: 3}}`.
 * @typedef {{entity_type: string, subject: string, client_id: string, scopes: string[],
 *            groups: string[], roles: string[], tenant: string, issuer: string,
 *            attributes?: Attributes}} Principal
 *   `attributes` is there only when the principal has some (serde skips an
 *   empty map), so a principal of a bundle that maps none prints as before.
 * @typedef {{name: string, resource_type: string, resource_id: string,
 *            params: object, digest: string}} Action
 * @typedef {{kind: 'allow', principal: Principal, action: Action, approval_id: string | null,
 *            consume: {token_id: string, expires_at: number} | null,
 *            forward_headers: [string, string][]}} Allow
 * @typedef {{kind: 'deny', code: string, message: string, issuer?: string}} Deny
 *   `issuer` is there only for `token-unknown-key` from an issuer whose keys
 *   the host fetches: fetch them again (no more often than the bundle's
 *   `key_fetch.unknown_kid_interval_seconds`), `setKeys`, and decide again.
 * @typedef {{approvers: string[], quorum: number, ttl_seconds: number,
 *            grant: 'once' | 'window', window_seconds: number,
 *            reason_required: boolean, message: string}} Obligation
 * @typedef {{kind: 'approval-required', requester: Principal, action: Action,
 *            authorization_details: object[], obligation: Obligation}} ApprovalRequired
 * @typedef {{kind: 'step-up-required', acr_values: string[], max_age: number | null,
 *            message: string}} StepUpRequired
 *   RFC 9470 step-up: the person must sign in again, with one of
 *   `acr_values` (any when empty) and no longer than `max_age` seconds ago
 *   (any age when null). Answered like a deny, by the component
 *   (`respond`: RFC 9470's 401 challenge); never needs the approval service.
 * @typedef {{verdict: Allow | Deny | ApprovalRequired | StepUpRequired, reasons: string[],
 *            policy_hash: string}} Decision
 */

/** Every denial code, in the order of the WIT `denial-code` enum. */
export const DENIAL_CODES = Object.freeze([
  'request-invalid',
  'route-not-found',
  'token-missing',
  'token-too-large',
  'token-malformed',
  'token-unsupported-algorithm',
  'token-algorithm-not-allowed',
  'token-unknown-issuer',
  'token-unknown-key',
  'token-key-mismatch',
  'token-bad-signature',
  'token-wrong-type',
  'token-unknown-critical-header',
  'token-wrong-audience',
  'token-expired',
  'token-not-yet-valid',
  'token-issued-in-future',
  'token-missing-claim',
  'token-invalid-claim',
  'policy-forbidden',
  'policy-no-permit',
  'action-token-digest-mismatch',
  'action-token-invalid',
  'action-token-replayed',
  'engine-trap',
  'engine-timeout',
  'engine-memory-exceeded',
  'engine-invalid-output',
  'engine-unavailable',
]);
const CODES = new Set(DENIAL_CODES);

/** The largest string accepted from a guest, in UTF-8 bytes (as the Rust host). */
export const MAX_GUEST_STRING = 64 * 1024;
/** The most entries of any list accepted from a guest (as the Rust host). */
export const MAX_GUEST_LIST = 64;

/** Something a policy module or the approval service returned is malformed. */
export class InvalidOutput extends Error {}

/** The suffix that scopes an approver group to the requester's tenant. */
const TENANT_SUFFIX = '@tenant';

/**
 * A deny with no determining policies.
 * @param {string} code one of DENIAL_CODES
 * @param {string} message
 * @param {string} policyHash
 * @param {string | null} [issuer] the issuer whose keys to fetch again (see Deny)
 * @returns {Decision}
 */
export function denied(code, message, policyHash, issuer = null) {
  const verdict = { kind: 'deny', code, message };
  if (issuer !== null && issuer !== undefined) verdict.issuer = issuer;
  return { verdict, reasons: [], policy_hash: policyHash };
}

/** Throws InvalidOutput with `why`. */
export function fail(why) {
  throw new InvalidOutput(why);
}

/** A string of at most MAX_GUEST_STRING UTF-8 bytes. */
export function str(v, what) {
  if (typeof v !== 'string') fail(`${what} is not a string`);
  if (v.length > MAX_GUEST_STRING / 3 && Buffer.byteLength(v) > MAX_GUEST_STRING) {
    fail(`${what} has ${Buffer.byteLength(v)} bytes`);
  }
  return v;
}

/** A list of at most MAX_GUEST_LIST entries, each checked by `each`. */
export function list(v, what, each) {
  if (!Array.isArray(v)) fail(`${what} is not a list`);
  if (v.length > MAX_GUEST_LIST) fail(`${what} has ${v.length} entries`);
  return v.map((x) => each(x, `an entry of ${what}`));
}

/** A u64 as a JSON number: beyond 2^53 JavaScript cannot print it exactly. */
export function u64(v, what) {
  const n = typeof v === 'bigint' ? v : Number.isInteger(v) ? BigInt(v) : fail(`${what} is not an integer`);
  if (n < 0n || n > BigInt(Number.MAX_SAFE_INTEGER)) fail(`${what} (${n}) is out of range`);
  return Number(n);
}

function u32(v, what) {
  if (!Number.isInteger(v) || v < 0 || v > 0xffffffff) fail(`${what} is not a u32`);
  return v;
}

function bool(v, what) {
  if (typeof v !== 'boolean') fail(`${what} is not a boolean`);
  return v;
}

/**
 * Only the keys listed, as serde's `deny_unknown_fields` demands: `keys`
 * must be there, `optional` may be (serde's defaults).
 */
function fields(o, what, keys, optional = []) {
  if (o === null || typeof o !== 'object' || Array.isArray(o)) fail(`${what} is not an object`);
  for (const k of Object.keys(o)) {
    if (!keys.includes(k) && !optional.includes(k)) fail(`${what} has an unknown field \`${k}\``);
  }
  for (const k of keys) if (!Object.hasOwn(o, k)) fail(`${what} lacks \`${k}\``);
  return o;
}

/** A header name is a token (RFC 9110 §5.6.2); a value has no CR, LF or NUL. */
export function header(pair, what) {
  if (!Array.isArray(pair) || pair.length !== 2) fail(`${what} is not a [name, value] pair`);
  const [name, value] = [str(pair[0], what), str(pair[1], what)];
  if (!/^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/.test(name) || /[\r\n\0]/.test(value) || value.length > 8192) {
    fail(`header \`${JSON.stringify(name).slice(1, -1)}\` is not a valid HTTP header`);
  }
  return [name, value];
}

/** The kinds of a mapped attribute's value, as the WIT `attribute-value` cases. */
export const ATTRIBUTE_KINDS = Object.freeze(['string', 'long', 'bool', 'set', 'datetime']);

/** Orders strings by their UTF-8 bytes, as a Rust `BTreeMap<String, _>`. */
function byBytes(a, b) {
  return Buffer.compare(Buffer.from(a[0]), Buffer.from(b[0]));
}

/** An integer of `kind` as a safe JavaScript number: a number or a BigInt, within [min, MAX_SAFE_INTEGER]. */
function safeInteger(v, what, kind, min) {
  const n = typeof v === 'bigint' ? v : Number.isInteger(v) ? BigInt(v) : fail(`${what} is not ${kind}`);
  if (n < BigInt(min) || n > BigInt(Number.MAX_SAFE_INTEGER)) fail(`${what} (${n}) is out of range`);
  return Number(n);
}

/**
 * One attribute value in JSON form (`{"long": 3}`), read as serde reads the
 * Rust `AttributeValue`: exactly one member, of a known kind, of its type.
 */
function attributeValue(v, name) {
  const what = `attribute \`${name}\``;
  if (v === null || typeof v !== 'object' || Array.isArray(v)) fail(`${what} is not an object`);
  const keys = Object.keys(v);
  if (keys.length !== 1) fail(`${what} has ${keys.length} members; it needs one of \`${ATTRIBUTE_KINDS.join('`, `')}\``);
  const [kind] = keys;
  const x = v[kind];
  switch (kind) {
    case 'string':
      return { string: str(x, what) };
    case 'long':
      return { long: safeInteger(x, what, 'a long (an integer)', -Number.MAX_SAFE_INTEGER) };
    case 'bool':
      if (typeof x !== 'boolean') fail(`${what} is not a bool`);
      return { bool: x };
    case 'set':
      if (!Array.isArray(x) || !x.every((e) => typeof e === 'string')) fail(`${what} is not a set of strings`);
      return { set: list(x, what, str) };
    case 'datetime':
      return { datetime: safeInteger(x, what, 'a datetime (whole Unix seconds)', 0) };
    default:
      return fail(`${what} has the unknown kind \`${kind}\``);
  }
}

/**
 * A principal's attributes in JSON form: an object of name -> value, each
 * checked, the result's keys in the Rust order. An empty name is refused,
 * and so is a name JavaScript would not keep in that order (an array
 * index, such as `7`).
 * @returns {Attributes}
 */
export function attributes(a) {
  if (a === null || typeof a !== 'object' || Array.isArray(a)) fail('the attributes are not an object');
  const entries = Object.entries(a);
  if (entries.length > MAX_GUEST_LIST) fail(`attributes has ${entries.length} entries`);
  for (const [name] of entries) {
    str(name, 'an attribute name');
    if (name === '') fail('an attribute without a name');
    if (/^(?:0|[1-9][0-9]*)$/.test(name) && Number(name) < 2 ** 32 - 1) {
      fail(`attribute name \`${name}\` is an array index, which JavaScript cannot keep in order`);
    }
  }
  return Object.fromEntries(entries.sort(byBytes).map(([name, v]) => [name, attributeValue(v, name)]));
}

/** A principal in JSON form, read as serde reads the Rust `Principal`. */
export function principal(p, what = 'the principal') {
  fields(p, what, ['entity_type', 'subject', 'issuer'], ['client_id', 'scopes', 'groups', 'roles', 'tenant', 'attributes']);
  const out = {
    entity_type: str(p.entity_type, 'the entity type'),
    subject: str(p.subject, 'the subject'),
    // Absent is the default, as serde's `default`; null is not a string or a list.
    client_id: str(p.client_id === undefined ? '' : p.client_id, 'the client id'),
    scopes: list(p.scopes === undefined ? [] : p.scopes, 'scopes', str),
    groups: list(p.groups === undefined ? [] : p.groups, 'groups', str),
    roles: list(p.roles === undefined ? [] : p.roles, 'roles', str),
    tenant: str(p.tenant === undefined ? '' : p.tenant, 'the tenant'),
    issuer: str(p.issuer, 'the issuer'),
  };
  // As serde: absent (or empty) is none, and none is not written; null is not a map.
  const attrs = attributes(p.attributes === undefined ? {} : p.attributes);
  if (Object.keys(attrs).length > 0) out.attributes = attrs;
  return out;
}

/** An action in JSON form: its params a JSON object, its digest passed through as given. */
function action(a) {
  fields(a, 'the action', ['name', 'resource_type', 'resource_id', 'params', 'digest']);
  const out = {
    name: str(a.name, 'the action'),
    resource_type: str(a.resource_type, 'the resource type'),
    resource_id: str(a.resource_id, 'the resource id'),
    params: a.params,
    digest: str(a.digest, 'the action digest'),
  };
  if (out.name === '') fail('an action without a name');
  if (out.params === null || typeof out.params !== 'object' || Array.isArray(out.params)) {
    fail("the action's params are not a JSON object");
  }
  return out;
}

/**
 * The WIT `approver` case of its policy text, `{tag, val}` (no `val` for
 * `subject`): the grammar of the Rust `Approver`.
 * @param {string} text
 */
export function approverCase(text) {
  if (text === 'subject') return { tag: 'subject' };
  if (text.startsWith('group:')) {
    const group = text.slice('group:'.length);
    if (group.endsWith(TENANT_SUFFIX)) {
      if (group.length > TENANT_SUFFIX.length) return { tag: 'tenant-group', val: group.slice(0, -TENANT_SUFFIX.length) };
    } else if (group !== '') {
      return { tag: 'group', val: group };
    }
  } else if (text.startsWith('user:') && text.length > 'user:'.length) {
    return { tag: 'user', val: text.slice('user:'.length) };
  }
  return fail(`approver \`${text}\` should be \`group:NAME\`, \`group:NAME@tenant\`, \`user:SUBJECT\` or \`subject\``);
}

/** The policy text of a WIT `approver` as jco lifts it (`{tag, val}`). */
function approverText(a) {
  if (a?.tag === 'subject') return 'subject';
  if (!['group', 'tenant-group', 'user'].includes(a?.tag) || typeof a.val !== 'string') fail('an approver is unknown');
  if (a.val === '') fail('an approver without a name');
  const name = str(a.val, 'an approver');
  return a.tag === 'group' ? `group:${name}` : a.tag === 'tenant-group' ? `group:${name}${TENANT_SUFFIX}` : `user:${name}`;
}

/** The largest quorum a host accepts, as the Rust host (the core refuses more at load). */
const MAX_QUORUM = 32;

function obligation(o) {
  fields(o, 'the obligation', [
    'approvers', 'quorum', 'ttl_seconds', 'grant', 'window_seconds', 'reason_required', 'message',
  ]);
  const out = {
    approvers: list(o.approvers, 'approvers', (a, what) => {
      approverCase(str(a, what));
      return a;
    }),
    quorum: u32(o.quorum, 'the quorum'),
    ttl_seconds: u64(o.ttl_seconds, 'ttl_seconds'),
    grant: o.grant === 'once' || o.grant === 'window' ? o.grant : fail('the grant mode is unknown'),
    window_seconds: u64(o.window_seconds, 'window_seconds'),
    reason_required: bool(o.reason_required, 'reason_required'),
    message: str(o.message, 'the obligation message'),
  };
  if (out.approvers.length === 0 || out.quorum === 0) fail('an obligation without approvers or quorum');
  if (out.quorum > MAX_QUORUM) fail(`an obligation with a quorum of ${out.quorum}`);
  if (out.ttl_seconds === 0) fail('an obligation that expires at once');
  if ((out.grant === 'window') === (out.window_seconds === 0)) {
    fail(`a ${out.grant} grant with a window of ${out.window_seconds} seconds`);
  }
  return out;
}

function verdict(v) {
  if (v === null || typeof v !== 'object') fail('the verdict is not an object');
  switch (v.kind) {
    case 'allow': {
      fields(v, 'the allowance', ['kind', 'principal', 'action', 'approval_id', 'consume', 'forward_headers']);
      const who = principal(v.principal);
      if (who.subject === '') fail('an allow without a subject');
      let consume = null;
      if (v.consume !== null) {
        fields(v.consume, 'consume', ['token_id', 'expires_at']);
        const tokenId = str(v.consume.token_id, 'the token id');
        if (tokenId === '') fail('a single-use token without an id');
        consume = { token_id: tokenId, expires_at: u64(v.consume.expires_at, 'expires_at') };
      }
      const approvalId = v.approval_id === null ? null : str(v.approval_id, 'the approval id');
      const what = action(v.action);
      const forwardHeaders = list(v.forward_headers, 'forward headers', header);
      return { kind: 'allow', principal: who, action: what, approval_id: approvalId, consume, forward_headers: forwardHeaders };
    }
    case 'deny': {
      fields(v, 'the denial', ['kind', 'code', 'message'], ['issuer']);
      if (!CODES.has(v.code)) fail('the denial code is unknown');
      const out = { kind: 'deny', code: v.code, message: str(v.message, 'the denial message') };
      // As serde reads an `Option` with a default: absent or null is none, and none is not written.
      if (v.issuer !== undefined && v.issuer !== null) out.issuer = str(v.issuer, "the denial's issuer");
      return out;
    }
    case 'approval-required': {
      fields(v, 'the challenge', ['kind', 'requester', 'action', 'authorization_details', 'obligation']);
      if (!Array.isArray(v.authorization_details)) fail('authorization_details is not an array');
      return {
        kind: 'approval-required',
        requester: principal(v.requester, 'the requester'),
        action: action(v.action),
        authorization_details: v.authorization_details,
        obligation: obligation(v.obligation),
      };
    }
    case 'step-up-required': {
      // serde reads an absent `Option` as none.
      fields(v, 'the step-up', ['kind', 'acr_values', 'message'], ['max_age']);
      return {
        kind: 'step-up-required',
        acr_values: list(v.acr_values, 'acr values', str),
        max_age: v.max_age === undefined || v.max_age === null ? null : u64(v.max_age, 'max_age'),
        message: str(v.message, 'the step-up message'),
      };
    }
    default:
      return fail('the verdict has no known kind');
  }
}

/**
 * Checks a decision in its JSON form (e.g. one the approval service sent)
 * and returns a fresh copy with the keys in serde's order. Throws
 * InvalidOutput, naming what is wrong, for anything else.
 * @param {unknown} d
 * @returns {Decision}
 */
export function checkDecision(d) {
  fields(d, 'the decision', ['verdict', 'reasons', 'policy_hash']);
  return {
    verdict: verdict(d.verdict),
    reasons: list(d.reasons, 'reasons', str),
    policy_hash: str(d.policy_hash, 'the policy hash'),
  };
}

/**
 * Whether a gateway must ask the approval service about this decision
 * instead of answering it alone (docs/gateway.md), read from typed fields
 * only, never from a forward header: an allow with `consume` (a `once`
 * action token to consume) or an `approval_id` (an approval that may have
 * been revoked), or approval-required with a `window` grant (the service
 * may hold one for this subject and action).
 * @param {Decision} decision
 */
export function needsService(decision) {
  const v = decision.verdict;
  if (v.kind === 'allow') return v.consume !== null || v.approval_id !== null;
  if (v.kind === 'approval-required') return v.obligation.grant === 'window';
  // A deny, and a step-up-required (the client signs in again; no approver is asked).
  return false;
}

/**
 * A WIT `list<attribute>` as jco lifts it (`{name, value: {tag, val}}`,
 * s64 and u64 as BigInt) as an object of name -> value in JSON form
 * (checked by `attributes`); a name given twice is refused.
 */
function attributesFromWit(l) {
  const out = new Map();
  for (const a of list(l, 'attributes', (x) => x)) {
    if (a === null || typeof a !== 'object' || a.value === null || typeof a.value !== 'object') fail('an attribute is not a record');
    const name = str(a.name, 'an attribute name');
    const { tag, val } = a.value;
    if (!ATTRIBUTE_KINDS.includes(tag)) fail(`attribute \`${name}\` has the unknown kind \`${tag}\``);
    if (out.has(name)) fail(`attribute \`${name}\` is given twice`);
    out.set(name, { [tag]: val });
  }
  return Object.fromEntries(out);
}

/** A WIT `principal` as jco lifts it, in JSON form (checked by `principal`). */
export function principalFromWit(p) {
  if (p === null || typeof p !== 'object') fail('the principal is not a record');
  return {
    entity_type: p.entityType,
    subject: p.subject,
    client_id: p.clientId,
    scopes: p.scopes,
    groups: p.groups,
    roles: p.roles,
    tenant: p.tenant,
    issuer: p.issuer,
    attributes: attributesFromWit(p.attributes),
  };
}

/**
 * serde_json's nesting limit: the Rust host reads a module's answer with
 * serde_json, which refuses a 128th array or object inside the others.
 */
const MAX_DEPTH = 128;

/**
 * The largest decision text a host reads (as the Rust and Python hosts):
 * far above any decision the core writes (a token of at most 8 KiB, params
 * of at most 64 KiB, twice), far below what would strain the calling
 * thread to parse.
 */
export const MAX_DECISION_JSON = 1 << 20;

/** Array indexes, which JavaScript moves to the front of an object's keys. */
const INDEX = /^(?:0|[1-9][0-9]*)$/;

/**
 * `s` cut to at most `max` UTF-8 bytes, at a character boundary (as Rust's
 * `floor_char_boundary`), so a message quoting the module stays within the
 * size every host accepts.
 * @param {string} s
 * @param {number} max
 */
export function cutUtf8(s, max) {
  if (s.length * 3 <= max || Buffer.byteLength(s) <= max) return s;
  let bytes = 0;
  let end = 0;
  for (const ch of s) {
    const n = Buffer.byteLength(ch);
    if (bytes + n > max) break;
    bytes += n;
    end += ch.length;
  }
  return s.slice(0, end);
}

/**
 * Walks a parsed answer without recursion (a hostile one may nest 100,000
 * deep): refuses nesting deeper than serde_json reads and any string or
 * member name UTF-8 cannot carry (a lone surrogate, which only an escape
 * gives); returns how many members its objects hold and whether one is
 * named as an array index.
 */
function walkJson(value) {
  const stack = [value, 1];
  let members = 0;
  let indexKey = false;
  while (stack.length > 0) {
    const depth = stack.pop();
    const v = stack.pop();
    if (typeof v === 'string') {
      if (!v.isWellFormed()) fail('a string holds a lone surrogate');
    } else if (Array.isArray(v)) {
      if (depth >= MAX_DEPTH) fail(`it nests more than ${MAX_DEPTH - 1} arrays or objects`);
      for (let i = 0; i < v.length; i++) stack.push(v[i], depth + 1);
    } else if (v !== null && typeof v === 'object') {
      if (depth >= MAX_DEPTH) fail(`it nests more than ${MAX_DEPTH - 1} arrays or objects`);
      for (const k of Object.keys(v)) {
        if (!k.isWellFormed()) fail('a member name holds a lone surrogate');
        indexKey ||= INDEX.test(k);
        members += 1;
        stack.push(v[k], depth + 1);
      }
    }
  }
  return { members, indexKey };
}

/** JSON strings, to be left out when counting a text's members and numbers. */
const STRINGS = /"(?:[^"\\]|\\.)*"/g;
/** A JSON number. */
const NUMBER = /-?(?:0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?/g;

/**
 * What `JSON.parse` may have changed in `text` when it does not print back
 * byte for byte, checked one by one: a member named twice (JSON.parse
 * keeps the last: a deny then an allow would read as an allow), an integer
 * beyond 2^53 (serde reads it exactly, JavaScript rounds it), a number
 * beyond a double, and an array-index member name (JavaScript moves it
 * first). Anything else is only written differently, with the same value
 * (`5e-6` for 0.000005, `1e21` for 1e+21, an escaped letter, spaces).
 */
function sameAsWritten(text, members, indexKey) {
  const bare = text.replace(STRINGS, '""');
  let colons = 0;
  for (let i = bare.indexOf(':'); i !== -1; i = bare.indexOf(':', i + 1)) colons += 1;
  if (colons !== members) fail('the decision names a member twice in one object');
  for (const [n, fraction, exponent] of bare.matchAll(NUMBER)) {
    const x = Number(n);
    if (!Number.isFinite(x)) fail(`the number ${n} is beyond a double`);
    if (fraction === undefined && exponent === undefined && !Number.isSafeInteger(x)) {
      fail(`the integer ${n} is beyond what JavaScript represents exactly`);
    }
  }
  if (indexKey) fail('a member is named as an array index, which JavaScript would reorder');
}

/**
 * A module's `decide-json` answer, read as strictly as the Rust host reads
 * it (host/src/convert.rs): at most MAX_DECISION_JSON bytes, JSON (no NaN
 * or Infinity), nested no deeper than serde_json reads, no lone surrogate,
 * no member named twice, no number JavaScript would alter (an integer
 * beyond 2^53, a number beyond a double) and no member name JavaScript
 * would reorder, so that the decision prints as the module wrote it; then
 * held to every check of `checkDecision`, with the action's params and the
 * authorization details at most MAX_GUEST_STRING bytes as JSON, as the
 * typed answer's strings were. Throws InvalidOutput, naming what is wrong.
 * @param {unknown} text
 * @returns {Decision}
 */
export function readDecision(text) {
  if (typeof text !== 'string') fail('the decision is not a string');
  if (text.length * 3 > MAX_DECISION_JSON && (text.length > MAX_DECISION_JSON || Buffer.byteLength(text) > MAX_DECISION_JSON)) {
    fail(`the decision is longer than ${MAX_DECISION_JSON} bytes`);
  }
  let value;
  try {
    value = JSON.parse(text);
  } catch {
    fail('the decision is not JSON');
  }
  const { members, indexKey } = walkJson(value);
  // What prints back byte for byte lost nothing (serde's usual output).
  if (JSON.stringify(value) !== text) sameAsWritten(text, members, indexKey);
  const d = checkDecision(value);
  // Only a text of more than MAX_GUEST_STRING bytes can hold a part that is.
  if (text.length * 3 > MAX_GUEST_STRING) {
    const v = d.verdict;
    if (v.action !== undefined) str(JSON.stringify(v.action.params), "the action's params");
    if (v.authorization_details !== undefined) str(JSON.stringify(v.authorization_details), 'authorization_details');
  }
  return d;
}

/**
 * Checked attributes (see `attributes`) as the WIT `list<attribute>` jco
 * lowers: sorted by name, `long` and `datetime` as BigInt.
 * @param {Attributes} a
 */
export function attributesToWit(a) {
  return Object.entries(a).sort(byBytes).map(([name, v]) => {
    const [tag] = Object.keys(v);
    const val = tag === 'long' || tag === 'datetime' ? BigInt(v[tag]) : tag === 'set' ? [...v.set] : v[tag];
    return { name, value: { tag, val } };
  });
}

/** A checked principal (see `principal`) as the WIT `principal` jco lowers. */
export function principalToWit(p) {
  return {
    entityType: p.entity_type,
    subject: p.subject,
    clientId: p.client_id,
    scopes: p.scopes,
    groups: p.groups,
    roles: p.roles,
    tenant: p.tenant,
    issuer: p.issuer,
    attributes: attributesToWit(p.attributes ?? {}),
  };
}

function actionToWit(a) {
  // `params` as plain JSON text: the guest parses it with serde_json and needs no canonical form.
  return { name: a.name, resourceType: a.resource_type, resourceId: a.resource_id, params: JSON.stringify(a.params), digest: a.digest };
}

/**
 * A checked decision (see checkDecision) in the shape jco lowers into the
 * component: the exact values a module's decision converts from. For the
 * component's `gateway.respond`.
 * @param {Decision} d
 */
export function toWit(d) {
  const v = d.verdict;
  let wit;
  if (v.kind === 'allow') {
    wit = {
      tag: 'allow',
      val: {
        principal: principalToWit(v.principal),
        action: actionToWit(v.action),
        approvalId: v.approval_id ?? undefined,
        consume: v.consume === null ? undefined : { tokenId: v.consume.token_id, expiresAt: BigInt(v.consume.expires_at) },
        forwardHeaders: v.forward_headers.map(([k, x]) => [k, x]),
      },
    };
  } else if (v.kind === 'deny') {
    wit = { tag: 'deny', val: { code: v.code, message: v.message, issuer: v.issuer } };
  } else if (v.kind === 'step-up-required') {
    wit = {
      tag: 'step-up-required',
      val: {
        acrValues: [...v.acr_values],
        maxAge: v.max_age === null ? undefined : BigInt(v.max_age),
        message: v.message,
      },
    };
  } else {
    const o = v.obligation;
    wit = {
      tag: 'approval-required',
      val: {
        requester: principalToWit(v.requester),
        action: actionToWit(v.action),
        authorizationDetails: JSON.stringify(v.authorization_details),
        obligation: {
          approvers: o.approvers.map(approverCase),
          quorum: o.quorum,
          ttlSeconds: BigInt(o.ttl_seconds),
          grant: o.grant,
          windowSeconds: BigInt(o.window_seconds),
          reasonRequired: o.reason_required,
          message: o.message,
        },
      },
    };
  }
  return { verdict: wit, reasons: [...d.reasons], policyHash: d.policy_hash };
}
