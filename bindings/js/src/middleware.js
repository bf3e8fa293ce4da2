// Greenlight in front of a Node service: Express middleware and a plain
// `http` wrapper that decide every request with the policy module and answer
// with the component's mapping of docs/gateway.md (`policy.respond`, the
// component's `gateway.respond`; this module has no table of its own). Fail
// closed: whatever goes wrong, the request does not reach the handler.

import { checkDecision, denied, InvalidOutput, needsService } from './decision.js';
import { KeySources } from './keys.js';
import { LivePolicy } from './live.js';

/** JSON bodies become the engine's `params`; other bodies are not parameters. */
const JSON_TYPE = /^application\/(?:[\w.+-]*\+)?json\s*(?:;|$)/i;

/**
 * @typedef {object} Options
 * @property {import('./engine.js').Policy} policy the loaded bundle.
 * @property {string} serviceUrl the approval service (`greenlight serve`),
 *   e.g. `https://greenlight.example.com` (a trailing slash is dropped):
 *   `https:`, or `http:` on loopback only (`localhost`, `127.x.y.z`,
 *   `[::1]`); see `serviceBaseUrl`.
 * @property {number} [maxBodyBytes=1048576] larger bodies are refused (request-invalid).
 * @property {number} [serviceTimeoutMs=5000] for each call to the service.
 * @property {number} [keysRefreshMs=5000] the least time between two JWKS
 *   fetches caused by tokens that name an unknown key.
 * @property {(message: string) => void} [log] where failures are reported; console.warn by default.
 * @property {() => number} [now] the time of a decision in Unix seconds; the
 *   wall clock by default (tests pin it). Also the clock of the KeySources
 *   the middleware makes.
 * @property {KeySources | false} [keySources] the issuers' keys the host
 *   fetches (`jwks_uri` or discovery in the bundle): by default the
 *   middleware makes a KeySources of the policy (with `now`, `log`) when the
 *   policy has such issuers. Give one to share it or drive its clock (the
 *   middleware starts it, and its `close()` closes it), or `false` when the
 *   host sets those keys itself (`policy.setKeys`).
 */

/**
 * Express middleware: `app.use(greenlight({policy, serviceUrl}))`.
 *
 * For each request it builds the engine's http-request (lower-cased headers
 * as received; `params` = the body when it is JSON), decides it at the wall
 * clock's time, and then:
 * - a decision that needs the approval service's state (`needsService`,
 *   read from typed fields only: an allow with `consume`, i.e. a one-time
 *   action token; an allow with an `approval_id`, i.e. an action token
 *   whose approval may have been revoked; approval-required with a `window`
 *   grant, which the service may already hold): the request goes to
 *   `${serviceUrl}/v1/check`, headers as the `[name, value]` pairs
 *   received, and the service's decision replaces the local one.
 *   Unreachable, or an answer that is not a decision: deny
 *   engine-unavailable.
 * - allow: removes the client's `x-greenlight-*` headers, adds the
 *   decision's forward headers to `req.headers`, sets `req.greenlight` to
 *   the decision and calls `next()`. The body was read: `req.body` holds
 *   the parsed JSON (or a Buffer for other types), `req.rawBody` the bytes.
 * - deny, approval-required or step-up-required: the component's answer
 *   (`policy.respond()`; for a step-up, RFC 9470's 401 with `acr_values`
 *   and `max_age`, never asking the service), checked: a module that
 *   answers wrongly or fails gives a 503, never a pass-through.
 *
 * At start, and when a token names an unknown key (at most every
 * `keysRefreshMs`; a `token-unknown-key` that names no `issuer`: one that
 * does is about an access-token issuer's fetched keys), it fetches
 * `${serviceUrl}/.well-known/jwks.json` into the policy's `greenlight` keys
 * so action tokens verify locally. The returned function has `ready`, a
 * promise of that first fetch.
 *
 * Neither call to the service follows a redirect: a 30x is a failure like
 * any other status (the keys are not loaded; the check denies), so the
 * client's tokens and the key fetch cannot be sent elsewhere.
 *
 * When the bundle has issuers whose keys the host fetches (a `jwks_uri`,
 * or discovery), the middleware keeps them with a KeySources (keys.js), as
 * `greenlight serve` does: `ready` also waits for their first fetch (an
 * issuer whose fetch failed is withdrawn: its tokens are denied naming the
 * error), they are refreshed in the background, and a deny
 * `token-unknown-key` naming an `issuer` fetches that issuer's keys again
 * (at most every `[key_fetch] unknown_kid_interval_seconds`) and decides
 * once more when they changed (docs/gateway.md). The returned function's
 * `close()` stops the background refresh; `keySources` is the KeySources
 * in use (null when none).
 *
 * @param {Options} options
 * @throws {TypeError} without a policy, or for a `serviceUrl` the gateway
 *   must not talk to (`serviceBaseUrl`)
 * @throws {Error} for an issuer's `jwks_uri` or metadata URL that may not be
 *   fetched (not HTTPS, nor plain HTTP to loopback where the bundle allows it)
 * @returns {((req: import('node:http').IncomingMessage, res: import('node:http').ServerResponse,
 *             next: (err?: unknown) => void) => Promise<void>) &
 *          {ready: Promise<void>, close: () => void, keySources: KeySources | null}}
 */
export function greenlight(options) {
  if (options.policy === undefined || typeof options.serviceUrl !== 'string') {
    throw new TypeError('greenlight() needs {policy, serviceUrl}');
  }
  const live = options.policy instanceof LivePolicy ? options.policy : null;
  const serviceUrl = serviceBaseUrl(options.serviceUrl);
  const maxBodyBytes = options.maxBodyBytes ?? 1 << 20;
  const timeout = options.serviceTimeoutMs ?? 5000;
  const refreshMs = options.keysRefreshMs ?? 5000;
  const log = options.log ?? ((m) => console.warn(`greenlight: ${m}`));
  const now = options.now ?? (() => Math.floor(Date.now() / 1000));

  let lastFetch = 0;
  let fetching = null;
  /** Fetches the service's JWKS into the policy; failures are logged, old keys stay. */
  function refreshKeys() {
    lastFetch = Date.now();
    fetching ??= (async () => {
      try {
        const r = await fetch(`${serviceUrl}/.well-known/jwks.json`, {
          redirect: 'manual', // a 30x is a failure (not ok), never followed
          signal: AbortSignal.timeout(timeout),
        });
        if (!r.ok) throw new Error(`status ${r.status}`);
        current().policy.setKeys('greenlight', await r.text());
      } catch (e) {
        log(`the approval service's keys could not be loaded: ${e.message}`);
      } finally {
        fetching = null;
      }
    })();
    return fetching;
  }
  /** The key sources of `policy`, adopting those of the version before. */
  function keySourcesOf(policy, before) {
    if (options.keySources instanceof KeySources && before === undefined) return options.keySources;
    if (options.keySources === false) return null;
    const made = new KeySources(policy, { now, log });
    made.adopt(before ?? null);
    return made.isEmpty ? null : made;
  }
  /** The version deciding: a policy and its issuers' key sources. */
  let version = { policy: live?.current ?? options.policy };
  version.keySources = keySourcesOf(version.policy);
  /** The version current now: a LivePolicy's reload is taken up here. */
  function current() {
    if (live !== null && live.current !== version.policy) {
      const before = version;
      version = { policy: live.current, keySources: keySourcesOf(live.current, before.keySources) };
      version.keySources?.start();
      before.keySources?.close();
    }
    return version;
  }
  const ready = Promise.all([refreshKeys(), version.keySources?.start()]).then(() => {});

  /**
   * The service decides with its store (consumes a one-time token, refuses
   * a revoked approval's token, applies a window grant); anything but a
   * decision is a deny. The headers go as received: in order, a repeated
   * one repeated.
   */
  async function checkAtService(request, policy) {
    const headers = request.headers;
    // The body goes as it came, so no number is rounded on the way; it must
    // be the JSON object the engine accepted (the module is untrusted too).
    const params = request.params ?? 'null';
    if (params !== 'null' && !isJsonObject(params)) {
      return denied('engine-invalid-output', 'the policy module allowed parameters that are not a JSON object', policy.policyHash);
    }
    const body = `{"method":${JSON.stringify(request.method)},"path":${JSON.stringify(request.path)},` +
      `"query":${JSON.stringify(request.query)},"headers":${JSON.stringify(headers)},"params":${params}}`;
    let r;
    try {
      r = await fetch(`${serviceUrl}/v1/check`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body,
        redirect: 'manual', // a 30x is a status other than 200: a deny, never followed
        signal: AbortSignal.timeout(timeout),
      });
    } catch (e) {
      log(`the approval service cannot be reached: ${e.cause?.message ?? e.message}`);
      return denied('engine-unavailable', `the approval service at ${serviceUrl} cannot be reached`, policy.policyHash);
    }
    if (r.status !== 200) {
      return denied('engine-unavailable', `the approval service answered with status ${r.status}`, policy.policyHash);
    }
    try {
      const answer = JSON.parse(await r.text());
      // The service adds where to ask and which component decided.
      if (answer !== null && typeof answer === 'object') {
        delete answer.ask;
        delete answer.component_hash;
      }
      return checkDecision(answer);
    } catch (e) {
      const why = e instanceof InvalidOutput || e instanceof SyntaxError ? e.message : 'unreadable';
      return denied('engine-unavailable', `the approval service's answer is not a decision: ${why}`, policy.policyHash);
    }
  }

  async function decide(req, { policy, keySources }) {
    const request = await httpRequest(req, maxBodyBytes);
    if (request.tooLarge) {
      return denied('request-invalid', `the request body has more than ${maxBodyBytes} bytes`, policy.policyHash);
    }
    await ready;
    // A version taken up since: its issuers' keys are fetched before it
    // decides (the same promise every request of it awaits). A replaced
    // version's sources are closed and stay so.
    if (keySources !== null && keySources === version.keySources) await keySources.start();
    const evaluate = () => policy.evaluateHttp(request, now());
    // A denial naming an issuer: its fetched keys lack the token's kid
    // (say, the provider rotated); fetch them again (rate-limited) and
    // decide once more if they changed.
    let decision = keySources !== null ? await keySources.retry(evaluate) : evaluate();
    const v = decision.verdict;
    // A denial naming an issuer is about that issuer's fetched keys, which
    // the service's JWKS cannot bring.
    const unknownKey = v.kind === 'deny' && v.code === 'token-unknown-key' && v.issuer === undefined;
    if (unknownKey && (fetching || Date.now() - lastFetch >= refreshMs)) {
      // Refresh, or wait for the refresh another request started; then
      // decide again with whatever keys that brought.
      await (fetching ?? refreshKeys());
      decision = evaluate();
    }
    if (needsService(decision)) {
      decision = await checkAtService(request, policy);
    }
    return decision;
  }

  const middleware = async (req, res, next) => {
    const v = current();
    const { policy } = v;
    let decision;
    try {
      decision = await decide(req, v);
    } catch (e) {
      log(`deciding failed: ${e.stack ?? e}`);
      decision = denied('engine-unavailable', 'the gateway could not decide this request', policy.policyHash);
    }
    if (decision.verdict.kind === 'allow') {
      forward(req, decision.verdict.forward_headers);
      req.greenlight = decision;
      next();
      return;
    }
    const answer = policy.respond(decision, serviceUrl);
    if (res.headersSent) {
      res.destroy();
      return;
    }
    res.statusCode = answer.status;
    for (const [name, value] of answer.headers) res.setHeader(name, value);
    res.end(JSON.stringify(answer.body));
  };
  middleware.ready = ready;
  Object.defineProperty(middleware, 'keySources', { get: () => current().keySources });
  middleware.close = () => version.keySources?.close();
  return middleware;
}

/**
 * The middleware around a plain `http` handler:
 * `http.createServer(withGreenlight({policy, serviceUrl}, handler))`.
 * @param {Options} options
 * @param {(req: import('node:http').IncomingMessage, res: import('node:http').ServerResponse) => void} handler
 */
export function withGreenlight(options, handler) {
  const middleware = greenlight(options);
  const wrapped = (req, res) =>
    middleware(req, res, (err) => {
      if (err) {
        res.statusCode = 500;
        res.end();
      } else {
        handler(req, res);
      }
    });
  wrapped.ready = middleware.ready;
  Object.defineProperty(wrapped, 'keySources', { get: () => middleware.keySources });
  wrapped.close = middleware.close;
  return wrapped;
}

/** The schemes a service URL may have (http: on loopback only). */
const WEB_SCHEMES = new Set(['http:', 'https:']);

/**
 * Whether `hostname` (as the WHATWG URL parser gives it: lower case, an IPv4
 * address in dotted decimal, an IPv6 one in brackets) is `localhost`, an
 * IPv4 address in 127.0.0.0/8 or `[::1]`: names such as
 * `127.0.0.1.evil.com` or `localhost.evil.com` are not.
 */
function isLoopback(hostname) {
  return hostname === 'localhost' || hostname === '[::1]' || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(hostname);
}

/**
 * The approval service's base URL from `text`; throws a TypeError when the
 * gateway must not talk to it: the gateway sends it the client's bearer
 * tokens and takes from it the keys that verify action tokens, so only
 * `https:` is accepted, or `http:` whose host is loopback (`localhost`,
 * `127.x.y.z`, `[::1]`). A URL with a user name or password, a query or a
 * fragment is refused too, and so is anything that is not an absolute URL.
 * The answer is rebuilt from the parsed parts (scheme, host, port, path;
 * the default port and trailing slashes dropped), so the URL requested is
 * the one checked. The messages are those of bindings/python.
 * @param {string} text
 * @returns {string}
 */
function serviceBaseUrl(text) {
  let url;
  try {
    url = new URL(text);
  } catch {
    throw new TypeError(`greenlight: the approval service URL ${JSON.stringify(text)} is not an absolute URL; ` +
      'give its base URL, such as https://greenlight.example.com');
  }
  if (!WEB_SCHEMES.has(url.protocol)) {
    throw new TypeError(`greenlight: the approval service URL has the scheme ${url.protocol}; use https:// (http:// only on loopback)`);
  }
  // `host` is the host name and a port other than the scheme's default.
  const shown = `${url.protocol}//${url.host}`;
  if (url.username !== '' || url.password !== '') {
    throw new TypeError(`greenlight: the approval service URL ${shown} has a user name or password before its host; remove them`);
  }
  if (url.protocol === 'http:' && !isLoopback(url.hostname)) {
    throw new TypeError(`greenlight: the approval service URL ${shown} is plain HTTP outside loopback; use https://`);
  }
  if (url.search !== '' || url.hash !== '') {
    throw new TypeError(`greenlight: the approval service URL ${shown} has a query or fragment; give its base URL only`);
  }
  return `${shown}${url.pathname}`.replace(/\/+$/, '');
}

/** The engine's view of a Node request; reads the body (once) into req.body and req.rawBody. */
async function httpRequest(req, maxBodyBytes) {
  const url = req.originalUrl ?? req.url ?? '/';
  const q = url.indexOf('?');
  const headers = [];
  for (let i = 0; i + 1 < req.rawHeaders.length; i += 2) headers.push([req.rawHeaders[i].toLowerCase(), req.rawHeaders[i + 1]]);
  const request = {
    method: req.method,
    path: q < 0 ? url : url.slice(0, q),
    query: q < 0 ? '' : url.slice(q + 1),
    headers,
    params: undefined,
  };
  const type = req.headers['content-type'];
  const json = type === undefined || JSON_TYPE.test(type);
  let raw;
  if (req.rawBody !== undefined || req.readableEnded) {
    // Read before us (e.g. by a body parser mounted first).
    raw = Buffer.isBuffer(req.rawBody) ? req.rawBody
      : typeof req.body === 'string' ? Buffer.from(req.body)
      : req.body !== undefined && json ? Buffer.from(JSON.stringify(req.body))
      : Buffer.alloc(0);
  } else if (req.headers['content-length'] !== undefined || req.headers['transfer-encoding'] !== undefined) {
    if (Number(req.headers['content-length']) > maxBodyBytes) return { ...request, tooLarge: true };
    const chunks = [];
    let size = 0;
    for await (const chunk of req) {
      size += chunk.length;
      if (size <= maxBodyBytes) chunks.push(chunk); // past it, the rest is read and dropped
    }
    if (size > maxBodyBytes) return { ...request, tooLarge: true };
    raw = Buffer.concat(chunks);
    req.rawBody = raw;
    req._body = true; // tells body-parser the body was read
    req.body = raw;
  } else {
    raw = Buffer.alloc(0);
  }
  if (raw.length > 0 && json) {
    request.params = raw.toString('utf8');
    try {
      req.body = JSON.parse(request.params);
    } catch {
      // The engine refuses it (request-invalid) for any route that reads it.
    }
  }
  return request;
}

function isJsonObject(text) {
  try {
    const v = JSON.parse(text);
    return v !== null && typeof v === 'object' && !Array.isArray(v);
  } catch {
    return false;
  }
}

/**
 * Whether a client header could pass for one of ours: `x-greenlight-*`, with
 * `_` read as `-` (some frameworks map one to the other, e.g. CGI-style
 * `HTTP_X_GREENLIGHT_SUBJECT`).
 */
function isOurs(name) {
  return name.toLowerCase().replaceAll('_', '-').startsWith('x-greenlight-');
}

/** Removes the client's x-greenlight-* headers, then adds the decision's. */
function forward(req, forwardHeaders) {
  for (const name of Object.keys(req.headers)) if (isOurs(name)) delete req.headers[name];
  const raw = [];
  for (let i = 0; i + 1 < req.rawHeaders.length; i += 2) {
    if (!isOurs(req.rawHeaders[i])) raw.push(req.rawHeaders[i], req.rawHeaders[i + 1]);
  }
  for (const [name, value] of forwardHeaders) {
    req.headers[name] = value;
    raw.push(name, value);
  }
  req.rawHeaders = raw;
}
