// Decisions as plain objects in the JSON form of the Rust
// `greenlight_core::Decision` (crates/core/src/decision.rs): the same field
// names, kebab-case kinds and codes, `consume: null` when absent, and the
// key order serde writes, so `JSON.stringify(decision)` is byte for byte
// what `greenlight check` prints. What a policy module (or the approval
// service) returns is untrusted: it is checked here before anyone acts on it.

/**
 * @typedef {{kind: 'allow', subject: string,
 *            consume: {token_id: string, expires_at: number} | null,
 *            forward_headers: [string, string][]}} Allow
 * @typedef {{kind: 'deny', code: string, message: string}} Deny
 * @typedef {{approvers: string[], quorum: number, ttl_seconds: number,
 *            grant: 'once' | 'window', window_seconds: number,
 *            reason_required: boolean, message: string}} Obligation
 * @typedef {{kind: 'approval-required', authorization_details: object[],
 *            action_digest: string, obligation: Obligation}} ApprovalRequired
 * @typedef {{verdict: Allow | Deny | ApprovalRequired, reasons: string[],
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

/**
 * A deny with no determining policies.
 * @param {string} code one of DENIAL_CODES
 * @param {string} message
 * @param {string} policyHash
 * @returns {Decision}
 */
export function denied(code, message, policyHash) {
  return { verdict: { kind: 'deny', code, message }, reasons: [], policy_hash: policyHash };
}

function fail(why) {
  throw new InvalidOutput(why);
}

function str(v, what) {
  if (typeof v !== 'string') fail(`${what} is not a string`);
  if (v.length > MAX_GUEST_STRING / 3 && Buffer.byteLength(v) > MAX_GUEST_STRING) {
    fail(`${what} has ${Buffer.byteLength(v)} bytes`);
  }
  return v;
}

function list(v, what, each) {
  if (!Array.isArray(v)) fail(`${what} is not a list`);
  if (v.length > MAX_GUEST_LIST) fail(`${what} has ${v.length} entries`);
  return v.map((x) => each(x, `an entry of ${what}`));
}

/** A u64 as a JSON number: beyond 2^53 JavaScript cannot print it exactly. */
function u64(v, what) {
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

/** Only the keys listed, as serde's `deny_unknown_fields` demands. */
function fields(o, what, keys) {
  if (o === null || typeof o !== 'object' || Array.isArray(o)) fail(`${what} is not an object`);
  for (const k of Object.keys(o)) if (!keys.includes(k)) fail(`${what} has an unknown field \`${k}\``);
  for (const k of keys) if (!Object.hasOwn(o, k)) fail(`${what} lacks \`${k}\``);
  return o;
}

/** A header name is a token (RFC 9110 §5.6.2); a value has no CR, LF or NUL. */
function header(pair, what) {
  if (!Array.isArray(pair) || pair.length !== 2) fail(`${what} is not a [name, value] pair`);
  const [name, value] = [str(pair[0], what), str(pair[1], what)];
  if (!/^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/.test(name) || /[\r\n\0]/.test(value) || value.length > 8192) {
    fail(`header \`${JSON.stringify(name).slice(1, -1)}\` is not a valid HTTP header`);
  }
  return [name, value];
}

function obligation(o) {
  fields(o, 'the obligation', [
    'approvers', 'quorum', 'ttl_seconds', 'grant', 'window_seconds', 'reason_required', 'message',
  ]);
  const out = {
    approvers: list(o.approvers, 'approvers', str),
    quorum: u32(o.quorum, 'the quorum'),
    ttl_seconds: u64(o.ttl_seconds, 'ttl_seconds'),
    grant: o.grant === 'once' || o.grant === 'window' ? o.grant : fail('the grant mode is unknown'),
    window_seconds: u64(o.window_seconds, 'window_seconds'),
    reason_required: bool(o.reason_required, 'reason_required'),
    message: str(o.message, 'the obligation message'),
  };
  if (out.approvers.length === 0 || out.quorum === 0) fail('an obligation without approvers or quorum');
  return out;
}

function verdict(v) {
  if (v === null || typeof v !== 'object') fail('the verdict is not an object');
  switch (v.kind) {
    case 'allow': {
      fields(v, 'the allowance', ['kind', 'subject', 'consume', 'forward_headers']);
      const subject = str(v.subject, 'the subject');
      if (subject === '') fail('an allow without a subject');
      let consume = null;
      if (v.consume !== null) {
        fields(v.consume, 'consume', ['token_id', 'expires_at']);
        const tokenId = str(v.consume.token_id, 'the token id');
        if (tokenId === '') fail('a single-use token without an id');
        consume = { token_id: tokenId, expires_at: u64(v.consume.expires_at, 'expires_at') };
      }
      const forwardHeaders = list(v.forward_headers, 'forward headers', header);
      return { kind: 'allow', subject, consume, forward_headers: forwardHeaders };
    }
    case 'deny':
      fields(v, 'the denial', ['kind', 'code', 'message']);
      if (!CODES.has(v.code)) fail('the denial code is unknown');
      return { kind: 'deny', code: v.code, message: str(v.message, 'the denial message') };
    case 'approval-required': {
      fields(v, 'the challenge', ['kind', 'authorization_details', 'action_digest', 'obligation']);
      if (!Array.isArray(v.authorization_details)) fail('authorization_details is not an array');
      return {
        kind: 'approval-required',
        authorization_details: v.authorization_details,
        action_digest: str(v.action_digest, 'the action digest'),
        obligation: obligation(v.obligation),
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
 * Converts a decision as jco lifts it from the component (variants as
 * `{tag, val}`, camelCase fields, u64 as BigInt, `authorization-details` as
 * a JSON string) to its JSON form, and checks it.
 * @param {any} raw
 * @returns {Decision}
 */
export function fromWit(raw) {
  if (raw === null || typeof raw !== 'object' || raw.verdict === null || typeof raw.verdict !== 'object') {
    fail('the decision is not a record');
  }
  const { tag, val } = raw.verdict;
  if (val === null || typeof val !== 'object') fail('the verdict has no payload');
  let v;
  if (tag === 'allow') {
    v = {
      kind: 'allow',
      subject: val.subject,
      consume: val.consume === undefined ? null : { token_id: val.consume?.tokenId, expires_at: val.consume?.expiresAt },
      forward_headers: val.forwardHeaders,
    };
  } else if (tag === 'deny') {
    v = { kind: 'deny', code: val.code, message: val.message };
  } else if (tag === 'approval-required') {
    const text = str(val.authorizationDetails, 'authorization_details');
    let details;
    try {
      details = JSON.parse(text);
    } catch (e) {
      fail(`authorization_details is not JSON: ${e.message}`);
    }
    // JavaScript must print it back exactly, or the client would be shown
    // another action than the one decided (e.g. an integer beyond 2^53).
    if (JSON.stringify(details) !== text) {
      fail('authorization_details has values JavaScript cannot represent exactly');
    }
    const o = val.obligation ?? {};
    v = {
      kind: 'approval-required',
      authorization_details: details,
      action_digest: val.actionDigest,
      obligation: {
        approvers: o.approvers,
        quorum: o.quorum,
        ttl_seconds: o.ttlSeconds,
        grant: o.grant,
        window_seconds: o.windowSeconds,
        reason_required: o.reasonRequired,
        message: o.message,
      },
    };
  } else {
    fail('the verdict has no known kind');
  }
  return checkDecision({ verdict: v, reasons: raw.reasons, policy_hash: raw.policyHash });
}
