// Greenlight in front of a Node service: Express middleware and a plain
// `http` wrapper that decide every request with the policy module and answer
// with the component's mapping of docs/gateway.md (`policy.respond`, the
// component's `gateway.respond`; this module has no table of its own). Fail
// closed: whatever goes wrong, the request does not reach the handler.

import { checkDecision, denied, InvalidOutput, needsService } from './decision.js';

/** JSON bodies become the engine's `params`; other bodies are not parameters. */
const JSON_TYPE = /^application\/(?:[\w.+-]*\+)?json\s*(?:;|$)/i;

/**
 * @typedef {object} Options
 * @property {import('./engine.js').Policy} policy the loaded bundle.
 * @property {string} serviceUrl the approval service (`greenlight serve`),
 *   e.g. `https://greenlight.example.com`, without a trailing slash.
 * @property {number} [maxBodyBytes=1048576] larger bodies are refused (request-invalid).
 * @property {number} [serviceTimeoutMs=5000] for each call to the service.
 * @property {number} [keysRefreshMs=5000] the least time between two JWKS
 *   fetches caused by tokens that name an unknown key.
 * @property {(message: string) => void} [log] where failures are reported; console.warn by default.
 * @property {() => number} [now] the time of a decision in Unix seconds; the
 *   wall clock by default (tests pin it).
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
 * - deny or approval-required: the component's answer (`policy.respond()`),
 *   checked: a module that answers wrongly or fails gives a 503, never a
 *   pass-through.
 *
 * At start, and when a token names an unknown key (at most every
 * `keysRefreshMs`), it fetches `${serviceUrl}/.well-known/jwks.json` into
 * the policy's `greenlight` keys so action tokens verify locally. The
 * returned function has `ready`, a promise of that first fetch.
 *
 * @param {Options} options
 * @returns {((req: import('node:http').IncomingMessage, res: import('node:http').ServerResponse,
 *             next: (err?: unknown) => void) => Promise<void>) & {ready: Promise<void>}}
 */
export function greenlight(options) {
  const { policy, serviceUrl } = options;
  if (policy === undefined || typeof serviceUrl !== 'string') {
    throw new TypeError('greenlight() needs {policy, serviceUrl}');
  }
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
        const r = await fetch(`${serviceUrl}/.well-known/jwks.json`, { signal: AbortSignal.timeout(timeout) });
        if (!r.ok) throw new Error(`status ${r.status}`);
        policy.setKeys('greenlight', await r.text());
      } catch (e) {
        log(`the approval service's keys could not be loaded: ${e.message}`);
      } finally {
        fetching = null;
      }
    })();
    return fetching;
  }
  const ready = refreshKeys();

  /**
   * The service decides with its store (consumes a one-time token, refuses
   * a revoked approval's token, applies a window grant); anything but a
   * decision is a deny. The headers go as received: in order, a repeated
   * one repeated.
   */
  async function checkAtService(request) {
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
      if (answer !== null && typeof answer === 'object') delete answer.ask;
      return checkDecision(answer);
    } catch (e) {
      const why = e instanceof InvalidOutput || e instanceof SyntaxError ? e.message : 'unreadable';
      return denied('engine-unavailable', `the approval service's answer is not a decision: ${why}`, policy.policyHash);
    }
  }

  async function decide(req) {
    const request = await httpRequest(req, maxBodyBytes);
    if (request.tooLarge) {
      return denied('request-invalid', `the request body has more than ${maxBodyBytes} bytes`, policy.policyHash);
    }
    await ready;
    let decision = policy.evaluateHttp(request, now());
    const v = decision.verdict;
    if (v.kind === 'deny' && v.code === 'token-unknown-key' && (fetching || Date.now() - lastFetch >= refreshMs)) {
      // Refresh, or wait for the refresh another request started; then
      // decide again with whatever keys that brought.
      await (fetching ?? refreshKeys());
      decision = policy.evaluateHttp(request, now());
    }
    if (needsService(decision)) {
      decision = await checkAtService(request);
    }
    return decision;
  }

  const middleware = async (req, res, next) => {
    let decision;
    try {
      decision = await decide(req);
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
  return wrapped;
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
