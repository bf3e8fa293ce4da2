// From a decision to the HTTP answer a gateway gives (docs/gateway.md).
//
// The mapping itself is the component's: `policy.respond()` calls its
// `greenlight:approval/gateway.respond`, the one mapping every host calls,
// and this binding keeps no table of its own. What is here is the host's
// part, as in the Rust host (host/src/convert.rs fn `answer`,
// host/src/policy.rs fn `unavailable`): the module's answer is checked
// before anyone acts on it, and an answer that does not fit its decision,
// or a module that fails, gets a 503 instead. Never a pass-through.

import { fail, header, list, str } from './decision.js';

/**
 * The answer a gateway gives of its own, or none for an allow.
 * @typedef {{status: number, headers: [string, string][], body: object | null}} Answer
 *   `status` 0 for an allow (the upstream answers); `headers` lower-case
 *   `[name, value]` pairs (`www-authenticate` when there is one, then
 *   `content-type` and `cache-control`); `body` the JSON body, parsed, or
 *   null for an allow.
 */

/**
 * The answer when the module cannot give one: a 503 with the code of what
 * failed, never letting the request through.
 * @param {string} code
 * @param {string} message
 * @returns {Answer}
 */
export function unavailable(code, message) {
  return {
    status: 503,
    headers: [['content-type', 'application/json'], ['cache-control', 'no-store']],
    body: { error: 'temporarily_unavailable', error_description: message, code },
  };
}

/** What a verdict is called in the reason an answer does not fit it. */
function what(decision) {
  const v = decision.verdict;
  if (v.kind === 'allow') return 'an allow';
  if (v.kind === 'deny') return `a deny \`${v.code}\``;
  if (v.kind === 'step-up-required') return 'a step-up-required';
  return 'an approval-required';
}

/**
 * The module's WIT `http-answer` (as jco lifts it: `body` undefined for
 * none) for `decision`, checked as the Rust host checks it: a JSON body, a
 * status that fits the verdict (0 with no body for an allow only; 400 to
 * 599 with a JSON object for anything else), valid HTTP headers. Throws
 * InvalidOutput with the Rust host's reason otherwise.
 * @param {any} raw
 * @param {import('./decision.js').Decision} decision
 * @returns {Answer}
 */
export function checkAnswer(raw, decision) {
  if (raw === null || typeof raw !== 'object') fail('the answer is not a record');
  let body = null;
  if (raw.body !== undefined) {
    const text = str(raw.body, "the answer's body");
    try {
      body = JSON.parse(text);
    } catch (e) {
      fail(`the answer's body is not JSON: ${e.message}`);
    }
  }
  const status = raw.status;
  const object = body !== null && typeof body === 'object' && !Array.isArray(body);
  const fits =
    decision.verdict.kind === 'allow' ? status === 0 && body === null : Number.isInteger(status) && status >= 400 && status <= 599 && object;
  if (!fits) {
    fail(`status ${status} with ${body === null ? 'no' : 'a'} body does not answer ${what(decision)}`);
  }
  return { status, headers: list(raw.headers, "the answer's headers", header), body };
}
