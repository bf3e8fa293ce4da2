// From a decision to the HTTP answer a gateway gives: the mapping of
// docs/gateway.md, the same as greenlight_core::gateway in Rust.

/** The status and OAuth `error` of every denial code. */
const STATUS = new Map([
  ['request-invalid', [400, 'invalid_request']],
  ['route-not-found', [403, 'access_denied']],
  ['policy-forbidden', [403, 'access_denied']],
  ['policy-no-permit', [403, 'access_denied']],
  ['action-token-digest-mismatch', [403, 'access_denied']],
  ['action-token-invalid', [401, 'invalid_token']],
  ['action-token-replayed', [401, 'invalid_token']],
]);

/**
 * The status and OAuth error of a denial code; an unknown code is treated
 * as an engine failure (503), never as something that lets a request pass.
 * @param {string} code
 * @returns {[number, string]}
 */
function statusOf(code) {
  if (STATUS.has(code)) return STATUS.get(code);
  if (code.startsWith('token-')) return [401, 'invalid_token'];
  return [503, 'temporarily_unavailable'];
}

/**
 * A message made safe for one quoted string of a `www-authenticate` header:
 * `"` becomes `'`, `\` becomes `/`, control characters become spaces.
 * @param {string} message
 */
function quoted(message) {
  return message.replace(/["\\\p{Cc}]/gu, (c) => (c === '"' ? "'" : c === '\\' ? '/' : ' '));
}

function jsonResponse(status, challenge, body) {
  const headers = [];
  if (challenge !== undefined) headers.push(['www-authenticate', challenge]);
  headers.push(['content-type', 'application/json'], ['cache-control', 'no-store']);
  return { status, headers, body };
}

/**
 * The answer a gateway gives for `decision` (docs/gateway.md), with the
 * approval service at `serviceUrl` (no trailing slash) named in challenges.
 *
 * An allow is `{status: 0, headers: [], body: null}`: the upstream answers.
 * Anything else is a JSON answer with lower-case `[name, value]` headers:
 * `www-authenticate` when there is one, `content-type`, `cache-control`.
 *
 * @param {import('./decision.js').Decision} decision
 * @param {string} serviceUrl
 * @returns {{status: number, headers: [string, string][], body: object | null}}
 */
export function respond(decision, serviceUrl) {
  const v = decision.verdict;
  if (v.kind === 'allow') return { status: 0, headers: [], body: null };
  if (v.kind === 'approval-required') {
    return jsonResponse(
      401,
      'Bearer error="insufficient_authorization", error_description="approval required"',
      {
        error: 'insufficient_authorization',
        error_description: v.obligation.message === '' ? 'approval required' : v.obligation.message,
        code: 'approval-required',
        authorization_details: v.authorization_details,
        action_digest: v.action_digest,
        obligation: v.obligation,
        ask: {
          backchannel_authentication_endpoint: `${serviceUrl}/oauth/bc-authorize`,
          token_endpoint: `${serviceUrl}/oauth/token`,
        },
      },
    );
  }
  // A deny, or anything unexpected: refuse.
  const code = v.kind === 'deny' ? v.code : 'engine-invalid-output';
  const message = v.kind === 'deny' ? v.message : 'the decision has no known verdict';
  const [status, error] = statusOf(code);
  let challenge;
  if (status === 401) {
    challenge =
      code === 'token-missing'
        ? 'Bearer'
        : `Bearer error="invalid_token", error_description="${quoted(message)}"`;
  }
  return jsonResponse(status, challenge, { error, error_description: message, code });
}
