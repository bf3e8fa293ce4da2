// What the policy module tells a host outside a decision: the loaded
// bundle's settings (`describe`), a verified access token (`authenticate`)
// or ID token (`authenticateIdToken`), a verified action token's claims
// (`inspect`) and its counters (`stats`), converted from what jco lifts
// (camelCase, options as undefined, u64 as BigInt) to the snake_case JSON
// form of the Rust `greenlight_types` (BundleInfo, Credential, ActionToken,
// EngineStats) and checked as the Rust host checks them. A host reads these
// instead of parsing `greenlight.toml` or a token itself.

import { fail, list, principal, principalFromWit, str, u64 } from './decision.js';

/**
 * Where a host gets an issuer's keys (the WIT `key-source`), as the Rust
 * `KeySource` serialises: `'bundle'` (the bundle carries them; nothing to
 * fetch), `{jwks_uri: url}` (fetch the JWKS at `url`) or `{discovery: urls}`
 * (fetch the provider metadata at `urls`, in order: OpenID Connect discovery,
 * then RFC 8414; the first whose `issuer` is exactly the issuer's names the
 * `jwks_uri` to fetch). The keys fetched go to `policy.setKeys`.
 * @typedef {'bundle' | {jwks_uri: string} | {discovery: string[]}} KeySource
 * How every host fetches issuers' keys (`[key_fetch]`, the WIT
 * `key-fetch-settings`), so that every host keeps them alike: HTTPS only
 * (plain HTTP to loopback when `allow_http_loopback`), no redirect, timeouts
 * in milliseconds, `max_bytes` of body at most; a fetched set is fresh
 * between `min_age_seconds` and `max_age_seconds` (whatever the provider's
 * cache headers say), keeps serving `max_stale_seconds` more while fetches
 * fail (then `policy.withdrawKeys`), and an unknown `kid` refetches at most
 * every `unknown_kid_interval_seconds`.
 * @typedef {{connect_timeout_ms: number, timeout_ms: number, max_bytes: number,
 *            min_age_seconds: number, max_age_seconds: number, max_stale_seconds: number,
 *            unknown_kid_interval_seconds: number, allow_http_loopback: boolean}} KeyFetchSettings
 * @typedef {{policy_hash: string,
 *            claims: {entity_type: string, scope: string, groups: string, roles: string, tenant: string},
 *            issuers: {issuer: string, audience: string, keys: KeySource, algorithms: string[],
 *                      required_typ: string | null}[],
 *            action_tokens: {issuer: string, audience: string, ttl_seconds: number, leeway_seconds: number} | null,
 *            approvals: {default_ttl_seconds: number, poll_interval_seconds: number,
 *                        confirm_max_age_seconds: number},
 *            development: boolean, key_fetch: KeyFetchSettings}} BundleInfo
 * @typedef {{principal: import('./decision.js').Principal, expires_at: number,
 *            auth_time: number | null, approver: boolean}} Credential
 * @typedef {{principal: import('./decision.js').Principal, audience: string, token_id: string,
 *            issued_at: number | null, expires_at: number, digest: string, grant: 'once' | 'window',
 *            approval_id: string | null, approvers: string[], authorization_details: unknown}} ActionToken
 * @typedef {{token_checks: number, signature_checks: number}} EngineStats
 */

function record(v, what) {
  if (v === null || typeof v !== 'object') fail(`${what} is not a record`);
  return v;
}

/**
 * The WIT `bundle-info`, checked.
 * @returns {BundleInfo}
 */
export function bundleInfoFromWit(raw) {
  const b = record(raw, 'the bundle info');
  const c = record(b.claims, 'the claim names');
  const a = record(b.approvals, 'the approval settings');
  const t = b.actionTokens;
  return {
    policy_hash: str(b.policyHash, 'the policy hash'),
    claims: {
      entity_type: str(c.entityType, 'the entity type'),
      scope: str(c.scope, 'the scope claim'),
      groups: str(c.groups, 'the groups claim'),
      roles: str(c.roles, 'the roles claim'),
      tenant: str(c.tenant, 'the tenant claim'),
    },
    issuers: list(b.issuers, 'issuers', (i) => ({
      issuer: str(i?.issuer, 'an issuer'),
      audience: str(i?.audience, 'an audience'),
      keys: keySource(i?.keys),
      algorithms: list(i?.algorithms, 'algorithms', (a) => str(a, 'an algorithm')),
      required_typ: i?.requiredTyp === undefined ? null : str(i.requiredTyp, 'a required typ'),
    })),
    action_tokens:
      t === undefined
        ? null
        : {
            issuer: str(record(t, 'the action-token settings').issuer, 'the action-token issuer'),
            audience: str(t.audience, 'the action-token audience'),
            ttl_seconds: u64(t.ttlSeconds, 'the action-token ttl'),
            leeway_seconds: u64(t.leewaySeconds, 'the action-token leeway'),
          },
    approvals: {
      default_ttl_seconds: u64(a.defaultTtlSeconds, 'the default ttl'),
      poll_interval_seconds: u64(a.pollIntervalSeconds, 'the poll interval'),
      confirm_max_age_seconds: u64(a.confirmMaxAgeSeconds, 'the confirm max age'),
    },
    development: b.development === true,
    key_fetch: keyFetch(record(b.keyFetch, 'the key-fetch settings')),
  };
}

/**
 * The WIT `key-source` as jco lifts it (`{tag, val}`), in the JSON form of
 * the Rust `KeySource`.
 * @returns {KeySource}
 */
function keySource(k) {
  switch (record(k, 'a key source').tag) {
    case 'bundle':
      return 'bundle';
    case 'jwks-uri':
      return { jwks_uri: str(k.val, 'a jwks_uri') };
    case 'discovery':
      return { discovery: list(k.val, 'metadata URLs', str) };
    default:
      return fail('a key source is unknown');
  }
}

function u32(v, what) {
  if (!Number.isInteger(v) || v < 0 || v > 0xffffffff) fail(`${what} is not a u32`);
  return v;
}

/**
 * The WIT `key-fetch-settings`, checked.
 * @returns {KeyFetchSettings}
 */
function keyFetch(k) {
  return {
    connect_timeout_ms: u32(k.connectTimeoutMs, 'connect_timeout_ms'),
    timeout_ms: u32(k.timeoutMs, 'timeout_ms'),
    max_bytes: u32(k.maxBytes, 'max_bytes'),
    min_age_seconds: u64(k.minAgeSeconds, 'min_age_seconds'),
    max_age_seconds: u64(k.maxAgeSeconds, 'max_age_seconds'),
    max_stale_seconds: u64(k.maxStaleSeconds, 'max_stale_seconds'),
    unknown_kid_interval_seconds: u64(k.unknownKidIntervalSeconds, 'unknown_kid_interval_seconds'),
    allow_http_loopback: typeof k.allowHttpLoopback === 'boolean' ? k.allowHttpLoopback : fail('allow_http_loopback is not a boolean'),
  };
}

/**
 * The WIT `credential`, checked as the Rust host checks it
 * (host/src/convert.rs): its principal names a subject and an issuer.
 * `auth_time` is null when the token does not say.
 * @returns {Credential}
 */
export function credentialFromWit(raw) {
  const c = record(raw, 'the credential');
  const who = principal(principalFromWit(c.principal));
  if (who.subject === '' || who.issuer === '') fail('a credential without a subject or issuer');
  return {
    principal: who,
    expires_at: u64(c.expiresAt, 'exp'),
    auth_time: c.authTime === undefined ? null : u64(c.authTime, 'auth_time'),
    approver: typeof c.approver === 'boolean' ? c.approver : fail('approver is not a boolean'),
  };
}

/**
 * The WIT `action-token`, checked.
 * @returns {ActionToken}
 */
export function actionTokenFromWit(raw) {
  const t = record(raw, 'the action token');
  const tokenId = str(t.tokenId, 'the token id');
  if (tokenId === '') fail('an action token without an id');
  const text = str(t.authorizationDetails, 'authorization_details');
  let details;
  try {
    details = JSON.parse(text);
  } catch (e) {
    fail(`authorization_details is not JSON: ${e.message}`);
  }
  return {
    principal: principal(principalFromWit(t.principal)),
    audience: str(t.audience, 'the audience'),
    token_id: tokenId,
    issued_at: t.issuedAt === undefined ? null : u64(t.issuedAt, 'iat'),
    expires_at: u64(t.expiresAt, 'exp'),
    digest: str(t.digest, 'the action digest'),
    grant: t.grant === 'once' || t.grant === 'window' ? t.grant : fail('the grant mode is unknown'),
    approval_id: t.approvalId === undefined ? null : str(t.approvalId, 'the approval id'),
    approvers: list(t.approvers, 'approvers', str),
    authorization_details: details,
  };
}

/**
 * The WIT `engine-stats`, checked.
 * @returns {EngineStats}
 */
export function statsFromWit(raw) {
  const s = record(raw, 'the stats');
  return { token_checks: u64(s.tokenChecks, 'token checks'), signature_checks: u64(s.signatureChecks, 'signature checks') };
}
