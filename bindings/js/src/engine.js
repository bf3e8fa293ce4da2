// The policy module (greenlight.wasm, transpiled by jco) for Node: load a
// bundle, decide requests, answer them (the component's `gateway.respond`).
// Every call runs in a worker thread with a time budget and a memory cap; a
// trap, an overrun or malformed output is a deny (or a 503 answer), and the
// instance is discarded for a fresh one, as in the Rust host.

import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { MessageChannel, Worker, receiveMessageOnPort } from 'node:worker_threads';
import { attributes, checkDecision, cutUtf8, DENIAL_CODES, denied, InvalidOutput, MAX_GUEST_STRING, readDecision, toWit } from './decision.js';
import { actionTokenFromWit, bundleInfoFromWit, credentialFromWit, statsFromWit } from './info.js';
import { checkAnswer, unavailable } from './respond.js';

/** Where `npm run build` puts the transpiled components, one folder per SHA-256. */
export const GEN_DIR = resolve(import.meta.dirname, '..', 'gen');

const WORKER = new URL('./worker.js', import.meta.url);

/**
 * Limits on what the policy module may use.
 * @typedef {object} Limits
 * @property {number} [callBudgetMs=500] wall-clock budget of one call. A
 *   warm decision takes well under a millisecond to a few (RSA), but V8
 *   compiles wasm lazily: the first run of each code path pays for compiling
 *   it (tens of milliseconds), more on a busy machine. The Rust host, which
 *   compiles ahead of time, uses 100 ms.
 * @property {number} [loadBudgetMs=10000] budget for starting an instance:
 *   a worker thread, instantiation, loading the bundle and its keys.
 * @property {number} [memoryBytes=67108864] the linear memory an instance may grow to.
 * @property {boolean} [nativeSignatures=true] whether the module's signature
 *   checks may use node:crypto (OpenSSL) through the WIT `crypto` import.
 *   Off, the module checks every signature itself: the same verdicts, slower.
 */
const DEFAULT_LIMITS = Object.freeze({ callBudgetMs: 500, loadBudgetMs: 10_000, memoryBytes: 64 << 20, nativeSignatures: true });

/**
 * A bundle was refused: every problem the module found, or another reason.
 * `problems` holds `{kind, file, line, column, message}` (line and column
 * are null where unknown); `other` the text of a WIT `other` error.
 */
export class BundleError extends Error {
  /** @param {{tag: string, val: any}} payload the WIT load-error */
  constructor(payload) {
    const cut = (v) => String(v).slice(0, MAX_GUEST_STRING); // the guest is untrusted
    const problems =
      payload?.tag === 'invalid-bundle' && Array.isArray(payload.val)
        ? payload.val.slice(0, 1024).map((p) => ({
            kind: cut(p.kind),
            file: cut(p.file),
            line: Number.isInteger(p.line) ? p.line : null,
            column: Number.isInteger(p.column) ? p.column : null,
            message: cut(p.message),
          }))
        : [];
    const other =
      payload?.tag === 'other' ? cut(payload.val)
      : payload?.tag === 'invalid-bundle' ? null
      : 'the policy module returned a malformed load error';
    const where = (p) => [p.file, p.line, p.line !== null ? p.column : null].filter((x) => x !== null).join(':');
    super(other ?? `the bundle has ${problems.length} problem(s):\n${problems.map((p) => `${where(p)}: ${p.message}`).join('\n')}`);
    this.name = 'BundleError';
    /** @type {{kind: string, file: string, line: number | null, column: number | null, message: string}[]} */
    this.problems = problems;
    /** @type {string | null} */
    this.other = other;
  }
}

/**
 * A refusal with a denial code: a token `authenticate`,
 * `authenticateIdToken`, `inspect` or `verifyCompact` refused, or a module
 * that failed (`engine-*`) while loading or answering.
 */
export class DenialError extends Error {
  /** @param {string} code @param {string} message @param {string | null} [issuer] */
  constructor(code, message, issuer = null) {
    super(`${code}: ${message}`);
    this.name = 'DenialError';
    /** The denial code, e.g. `token-expired` or `engine-trap`. */
    this.code = code;
    /** The denial's message, for a person. */
    this.denial = message;
    /**
     * For `token-unknown-key` from one of the bundle's issuers whose keys
     * the host fetches: that issuer (fetch its keys again, `setKeys`, and
     * retry); null otherwise.
     * @type {string | null}
     */
    this.issuer = issuer;
  }
}

/**
 * Reads a bundle folder into `[name, contents]` pairs exactly as the Rust
 * host does (host/src read_bundle_dir): `greenlight.toml`, `policy.cedar`,
 * `schema.cedarschema` when present, and every `*.json` file at the top
 * level, sorted by name. Nothing else is read, so private keys kept beside
 * a bundle never enter the engine.
 * @param {string} dir
 * @returns {[string, string][]}
 */
export function readBundleDir(dir) {
  const wanted = (n) => n === 'greenlight.toml' || n === 'policy.cedar' || n === 'schema.cedarschema' || n.endsWith('.json');
  const utf8 = new TextDecoder('utf-8', { fatal: true });
  return readdirSync(dir, { withFileTypes: true })
    .filter((e) => wanted(e.name) && e.isFile()) // like Rust's file_type(): symlinks are skipped
    .map((e) => e.name)
    .sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b)))
    .map((n) => {
      try {
        return [n, utf8.decode(readFileSync(join(dir, n)))];
      } catch (e) {
        throw new Error(`${join(dir, n)}: ${e.message}`);
      }
    });
}

/** Reads one unsigned LEB128 number at `at`: [value, bytes read]. */
function leb(bytes, at) {
  let value = 0;
  for (let i = 0; i < 5; i++) {
    const b = bytes[at + i];
    value += (b & 0x7f) * 2 ** (7 * i);
    if ((b & 0x80) === 0) return [value, i + 1];
  }
  throw new Error('malformed LEB128 number in the core module');
}

function uleb(n) {
  const out = [];
  do {
    const b = n % 128;
    n = Math.floor(n / 128);
    out.push(n > 0 ? b | 0x80 : b);
  } while (n > 0);
  return out;
}

/**
 * Gives a core module's own linear memory a maximum of `maxBytes`, so
 * `memory.grow` fails past it (jco has no resource limiter; this is the
 * same cap wasmtime's limiter enforces). Modules without a memory section
 * are returned unchanged.
 * @param {Uint8Array} bytes
 * @param {number} maxBytes
 */
export function capMemory(bytes, maxBytes) {
  const maxPages = Math.floor(maxBytes / 65536);
  let at = 8; // magic and version
  while (at < bytes.length) {
    const id = bytes[at];
    const [size, n] = leb(bytes, at + 1);
    const start = at + 1 + n;
    if (id === 5) {
      const [count, c] = leb(bytes, start);
      let p = start + c;
      const flags = bytes[p++];
      if (count !== 1 || (flags !== 0 && flags !== 1)) {
        throw new Error('the component has a shared, 64-bit or second memory, which this host cannot cap');
      }
      const [min, m] = leb(bytes, p);
      p += m;
      const max = flags === 1 ? leb(bytes, p)[0] : Infinity;
      const cap = Math.min(max, maxPages);
      if (min > cap) throw new Error(`the component's initial memory exceeds the cap of ${maxBytes} bytes`);
      const body = [1, 1, ...uleb(min), ...uleb(cap)];
      return Buffer.concat([bytes.subarray(0, at), Buffer.from([5, ...uleb(body.length), ...body]), bytes.subarray(start + size)]);
    }
    at = start + size;
  }
  return bytes;
}

/** The transpiled copy of the component with this SHA-256, or an error saying how to make it. */
function transpiled(sha, what) {
  const dir = join(GEN_DIR, sha);
  if (!existsSync(join(dir, 'component.js'))) {
    throw new Error(
      `no transpiled copy of ${what} (sha256 ${sha}) in ${GEN_DIR}: run \`npm run build\` in bindings/js ` +
        '(GREENLIGHT_WASM=path/to/greenlight.wasm npm run build for another component)',
    );
  }
  return dir;
}

/** A compiled policy module, ready to load bundles. */
export class Engine {
  #modules;
  #glue;
  #limits;
  #jose = null;

  /** @private Use `await Engine.load()`. */
  #hash;

  constructor(modules, glue, limits, hash) {
    this.#modules = modules;
    this.#glue = glue;
    this.#limits = limits;
    this.#hash = hash;
  }

  /** @private The budget for loading, which policy tests also run within. */
  get loadBudgetMs() {
    return this.#limits.loadBudgetMs;
  }

  /** Hex SHA-256 of the component: names the module version, as a policy's hash names the bundle's. */
  get componentHash() {
    return this.#hash;
  }

  /**
   * How many signature checks node:crypto answered for the module (the WIT
   * `crypto` import), across every instance: zero when `nativeSignatures`
   * is off.
   */
  get nativeSignatureChecks() {
    return Atomics.load(this.#limits.nativeChecks, 0);
  }

  /**
   * Compiles the component at `wasmPath` (default: the one `npm run build`
   * transpiled, normally the workspace's greenlight.wasm). The path selects,
   * by its SHA-256, the transpiled copy in `gen/`; the wasm itself is not
   * run from here, jco's output is.
   * @param {string} [wasmPath]
   * @param {Limits} [limits]
   * @returns {Promise<Engine>}
   */
  static async load(wasmPath, limits = {}) {
    let dir;
    let sha;
    if (wasmPath === undefined) {
      const defaults = join(GEN_DIR, 'default.json');
      if (!existsSync(defaults)) throw new Error(`nothing was transpiled yet: run \`npm run build\` in bindings/js`);
      sha = JSON.parse(readFileSync(defaults, 'utf8')).sha256;
      dir = transpiled(sha, 'the default component');
    } else {
      sha = createHash('sha256').update(readFileSync(wasmPath)).digest('hex');
      dir = transpiled(sha, wasmPath);
    }
    // The count of native signature checks, shared with every worker.
    const all = { ...DEFAULT_LIMITS, ...limits, nativeChecks: new Int32Array(new SharedArrayBuffer(4)) };
    const modules = {};
    for (const name of readdirSync(dir).filter((n) => n.endsWith('.wasm'))) {
      modules[name] = await WebAssembly.compile(capMemory(readFileSync(join(dir, name)), all.memoryBytes));
    }
    return new Engine(modules, pathToFileURL(join(dir, 'component.js')).href, all, sha);
  }

  /** @private */
  spawn(files, keys) {
    return new Instance(this.#modules, this.#glue, this.#limits, files, keys);
  }

  /**
   * Validates and loads a bundle given as `[name, contents]` pairs.
   * @param {[string, string][]} files
   * @returns {Policy}
   * @throws {BundleError} when the module refuses the bundle, listing every problem
   * @throws {DenialError} when the module fails while loading (`engine-*`)
   */
  loadBundle(files) {
    if (!Array.isArray(files) || !files.every((f) => Array.isArray(f) && f.length === 2 && f.every((s) => typeof s === 'string'))) {
      throw new TypeError('files must be [name, contents] pairs of strings');
    }
    const instance = this.spawn(files, []);
    const started = instance.started();
    if (started.err !== undefined) {
      instance.close();
      throw new BundleError(started.err);
    }
    if (started.fail !== undefined) {
      instance.close();
      throw new DenialError(started.fail.code, started.fail.message);
    }
    let info;
    try {
      info = bundleInfoFromWit(started.ok);
    } catch (e) {
      instance.close();
      if (!(e instanceof InvalidOutput)) throw e;
      throw new DenialError('engine-invalid-output', `the policy module described the bundle wrongly: ${e.message}`);
    }
    return new Policy(this, files, instance, info);
  }

  /**
   * Reads a bundle folder (see readBundleDir) and loads it.
   * @param {string} dir
   * @returns {Policy}
   */
  loadBundleDir(dir) {
    return this.loadBundle(readBundleDir(dir));
  }

  /**
   * Verifies a bare JWS against one JWK (a JSON object) in the module, with
   * the rules access tokens get (the WIT `jose.verify-compact`).
   * @param {string} token
   * @param {string} jwk
   * @returns {Uint8Array} the payload
   * @throws {DenialError} with a `token-*` code, or `engine-*` when the module failed
   */
  verifyCompact(token, jwk) {
    this.#jose ??= this.spawn(null, []);
    const r = this.#jose.call('verifyCompact', [String(token), String(jwk)]);
    if (r.fail !== undefined) {
      this.#jose = null;
      throw new DenialError(r.fail.code, r.fail.message);
    }
    if (r.err !== undefined) throw new DenialError(...jwsError(r.err));
    if (!(r.ok instanceof Uint8Array)) throw new DenialError('engine-invalid-output', 'the payload is not bytes');
    return r.ok;
  }

  /** Stops the instance `verifyCompact` uses, if any. */
  close() {
    this.#jose?.close();
    this.#jose = null;
  }
}

/** A WIT `denial` or `jws-error` from the guest, checked: [code, message]. */
function jwsError(e) {
  if (DENIAL_CODES.includes(e?.code) && typeof e?.message === 'string' && e.message.length <= MAX_GUEST_STRING) {
    return [e.code, e.message];
  }
  return ['engine-invalid-output', 'the policy module returned a malformed error'];
}

/**
 * One instance of the module in its worker thread. `call` blocks the calling
 * thread until the answer comes or the budget runs out; then the worker is
 * terminated and the call fails with engine-timeout.
 */
class Instance {
  #worker;
  #port;
  #flag;
  #limits;
  #spawnedAt;
  #started = null;

  constructor(modules, glue, limits, files, keys) {
    const { port1, port2 } = new MessageChannel();
    this.#flag = new Int32Array(new SharedArrayBuffer(4));
    this.#port = port1;
    this.#limits = limits;
    this.#spawnedAt = performance.now();
    this.#worker = new Worker(WORKER, {
      workerData: { port: port2, flag: this.#flag, glue, modules, files, keys, memoryBytes: limits.memoryBytes, nativeSignatures: limits.nativeSignatures, nativeChecks: limits.nativeChecks },
      transferList: [port2],
      // The guest's own memory is capped in the module; this bounds what
      // lifting its answers into JavaScript may take.
      resourceLimits: { maxOldGenerationSizeMb: 256, maxYoungGenerationSizeMb: 32 },
    });
    // A worker that dies is noticed by its silence; its errors must not
    // become uncaught exceptions here.
    this.#worker.on('error', () => {});
    this.#worker.unref();
    this.#port.unref();
  }

  /** Waits for an answer; `{fail}` on a timeout (the worker is then stopped). */
  #wait(budgetMs, what) {
    Atomics.wait(this.#flag, 0, 0, Math.max(1, budgetMs));
    const received = receiveMessageOnPort(this.#port);
    if (received === undefined) {
      this.close();
      return { fail: { code: 'engine-timeout', message: `the policy module ran past its time budget${what}` } };
    }
    Atomics.store(this.#flag, 0, 0);
    return received.message;
  }

  /** The start-up answer: `{ok: bundleInfo | null}`, `{err: loadError}` or `{fail}`. */
  started() {
    this.#started ??= this.#wait(this.#limits.loadBudgetMs - (performance.now() - this.#spawnedAt), ' while loading');
    return this.#started;
  }

  /**
   * Calls `op` in the module: `{ok}`, `{err}` (a WIT err) or `{fail}`. After
   * a `fail` this instance is closed and must not be called again.
   */
  call(op, args, budgetMs = this.#limits.callBudgetMs) {
    const started = this.started();
    if (started.ok === undefined) {
      this.close();
      const why = started.fail?.message ?? new BundleError(started.err).message;
      return { fail: { code: 'engine-unavailable', message: `no policy instance is available: ${why}` } };
    }
    this.#port.postMessage({ op, args });
    const answer = this.#wait(budgetMs, '');
    if (answer.fail !== undefined) this.close();
    return answer;
  }

  close() {
    this.#worker.terminate();
    this.#port.close();
  }
}

/**
 * A bundle loaded in the policy module, answering requests. Calls are
 * synchronous and never throw for a failing module: a trap, an overrun or
 * malformed output is a deny (`engine-*`), that instance is discarded and a
 * fresh one (with the bundle and keys) is started for the next call.
 */
export class Policy {
  #engine;
  #files;
  /** Key changes since loading, the last per issuer: issuer → [op, arg], replayed into every new instance. */
  #keys = new Map();
  #instance;
  #info;
  #hash;

  /** @private Use `engine.loadBundle()` or `engine.loadBundleDir()`. */
  constructor(engine, files, instance, info) {
    this.#engine = engine;
    this.#files = files;
    this.#instance = instance;
    this.#info = info;
    this.#hash = info.policy_hash;
  }

  /** The bundle's hex SHA-256, as reported in every decision. */
  get policyHash() {
    return this.#hash;
  }

  /**
   * What the module said about the bundle when it was loaded (the WIT
   * `describe`): `{policy_hash, claims, issuers, action_tokens, approvals,
   * development, key_fetch}`, as the Rust `BundleInfo` serialises. A host
   * reads these (e.g. where an issuer's `keys` come from, how to fetch them
   * by `key_fetch`, the action tokens' `leeway_seconds`) instead of parsing
   * greenlight.toml.
   * @returns {import('./info.js').BundleInfo}
   */
  get info() {
    return structuredClone(this.#info);
  }

  /**
   * Runs `op`. A failure discards the instance and starts the next one at
   * once, in the background, so it is ready when the next call comes.
   */
  #call(op, args, budgetMs) {
    try {
      this.#instance ??= this.#engine.spawn(this.#files, this.#replay());
    } catch (e) {
      // No thread could be started (e.g. the process is out of resources).
      return { fail: { code: 'engine-unavailable', message: `no policy instance is available: ${e.message}` } };
    }
    const answer = this.#instance.call(op, args, budgetMs);
    if (answer.fail !== undefined) {
      this.#instance = null;
      try {
        this.#instance = this.#engine.spawn(this.#files, this.#replay());
      } catch {
        // The next call tries again.
      }
    }
    return answer;
  }

  /**
   * Decides `call` (one `http`, `access` or `vouched` request, as the
   * vectors write it) at `now` through the WIT `decide-json`: the request
   * and the decision cross the thread and the component as one JSON text
   * each, which costs far less than the typed records structured-cloned
   * and converted by jco (BENCHMARKS.md, "The Python and Node hosts, per
   * call"). Every failure is a deny.
   */
  #decide(call, now) {
    const answer = this.#call('decideJson', [JSON.stringify(call), now]);
    if (answer.fail !== undefined) return denied(answer.fail.code, answer.fail.message, this.#hash);
    try {
      return readDecision(answer.ok);
    } catch (e) {
      if (!(e instanceof InvalidOutput)) throw e;
      const message = `the policy module returned a malformed decision: ${e.message}`;
      return denied('engine-invalid-output', cutUtf8(message, MAX_GUEST_STRING), this.#hash);
    }
  }

  /** The key changes a new instance replays, in order: `[issuer, op, arg]`. */
  #replay() {
    return [...this.#keys].map(([issuer, [op, arg]]) => [issuer, op, arg]);
  }

  /**
   * Makes one key change (`setKeys` or `withdrawKeys`) in the instance, and
   * remembers it (the last per issuer) for every instance started later;
   * a refused change changes nothing.
   */
  #changeKeys(op, issuer, arg) {
    const answer = this.#call(op, [issuer, arg]);
    if (answer.err !== undefined) throw new BundleError(answer.err);
    if (answer.fail !== undefined) throw new DenialError(answer.fail.code, answer.fail.message);
    this.#keys.delete(issuer);
    this.#keys.set(issuer, [op, arg]);
  }

  /**
   * Replaces the key set of one issuer (the bundle's `issuer` string, or
   * `greenlight` for action tokens) with a JWKS document, here and in every
   * instance started later; it ends a `withdrawKeys`. The old keys keep
   * serving when the new set is refused (a set holding a private key member,
   * `d`, `p`, `q`, `dp`, `dq`, `qi` or `oth`, is).
   * @param {string} issuer
   * @param {string} jwks a JWKS JSON document
   * @throws {BundleError} when the module refuses the set
   * @throws {DenialError} when the module fails (`engine-*`)
   */
  setKeys(issuer, jwks) {
    this.#changeKeys('setKeys', String(issuer), String(jwks));
  }

  /**
   * Removes one issuer's keys (named as for `setKeys`), here and in every
   * instance started later: its tokens are then denied with
   * `token-unknown-key`, whose message ends with `: ${reason}` (say, the
   * last fetch error, or that the keys grew too stale), until `setKeys`
   * gives it keys again.
   * @param {string} issuer
   * @param {string} reason
   * @throws {BundleError} for an issuer the bundle does not have (nothing changes)
   * @throws {DenialError} when the module fails (`engine-*`)
   */
  withdrawKeys(issuer, reason) {
    this.#changeKeys('withdrawKeys', String(issuer), String(reason));
  }

  /**
   * Decides an HTTP request at `now` (Unix seconds).
   * @param {{method: string, path: string, query?: string,
   *          headers?: [string, string][] | Record<string, string>,
   *          params?: string | object | null,
   *          entities?: string | object[] | null}} request `params` is the
   *   JSON body as text (an object is serialised); null or absent for none.
   *   `entities` are what this host adds for the request beside the
   *   bundle's `entities.json` (Cedar's entity JSON, a list; a list is
   *   serialised): only a host gives them, never the client.
   * @param {number | bigint} now
   * @returns {import('./decision.js').Decision}
   * @throws {TypeError} only for arguments of the wrong shape, never for what the module does
   */
  evaluateHttp(request, now) {
    return this.#decide({ http: httpRequest(request) }, seconds(now));
  }

  /**
   * Decides an AuthZEN-shaped request at `now` (Unix seconds).
   * @param {{token: string, action: string, resource_type: string,
   *          resource_id: string, resource_properties?: string | object | null,
   *          context?: string | object | null,
   *          entities?: string | object[] | null}} request (camelCase names are accepted too);
   *   `entities` as for `evaluateHttp`
   * @param {number | bigint} now
   * @returns {import('./decision.js').Decision}
   * @throws {TypeError} only for arguments of the wrong shape, never for what the module does
   */
  evaluate(request, now) {
    return this.#decide({ access: accessRequest(request) }, seconds(now));
  }

  /**
   * Decides an AuthZEN-shaped request at `now` (Unix seconds) for a subject
   * this host vouches for instead of a token (the WIT `evaluate-as`):
   * `subject` stands where a verified token's principal would (its
   * `entity_type` is replaced by the bundle's), and `request.token` must be
   * empty (else a deny `request-invalid`).
   *
   * Only for subjects forwarded by a policy enforcement point this host has
   * authenticated and trusts: the module cannot tell a vouched subject from
   * a claimed one, so never pass a subject a client merely claims.
   * @param {{entity_type: string, subject: string, client_id?: string, scopes?: string[],
   *          groups?: string[], roles?: string[], tenant?: string, issuer: string,
   *          attributes?: import('./decision.js').Attributes}} subject
   *   a principal, such as the `principal` of what `authenticate` returns
   *   (camelCase names are accepted too). `attributes`, by name, e.g.
   *   `{department: {string: 'finance'}, level: {long: 3}}` (`long` and
   *   `datetime` a safe integer or a BigInt): only names the bundle maps
   *   (`[principal.attributes.NAME]`), each with its mapped type, else the
   *   module denies `request-invalid`.
   * @param {{token: string, action: string, resource_type: string,
   *          resource_id: string, resource_properties?: string | object | null,
   *          context?: string | object | null}} request as for `evaluate`; `token` is ''
   * @param {number | bigint} now
   * @returns {import('./decision.js').Decision}
   * @throws {TypeError} only for arguments of the wrong shape, never for what the module does
   */
  evaluateAs(subject, request, now) {
    return this.#decide({ vouched: { subject: principal(subject), access: accessRequest(request) } }, seconds(now));
  }

  /**
   * Verifies an access token of one of the bundle's issuers at `now` (Unix
   * seconds), with every rule `evaluateHttp` applies to tokens, and returns
   * its credential: who it names (`principal`, with only the groups its
   * issuer is authoritative for), when it expires (`expires_at`), when the
   * person signed in (`auth_time`, null when the token does not say) and
   * whether it is meant for approving (`approver`: issued to one of the
   * issuer's `approver_clients`, or carrying its `approval_scope`). Action
   * tokens are refused (`action-token-invalid`).
   * @param {string} token
   * @param {number | bigint} now
   * @returns {import('./info.js').Credential}
   * @throws {DenialError} with the token's denial code, or `engine-*`
   *   (`engine-invalid-output` for a malformed credential, such as one
   *   without a subject or issuer, as the Rust host)
   */
  authenticate(token, now) {
    return checkedCredential(this.#result('authenticate', [String(token), seconds(now)]));
  }

  /**
   * Verifies an OpenID Connect ID token of one of the bundle's issuers at
   * `now` (Unix seconds) for the relying party `clientId` that sent `nonce`
   * with its authentication request (OpenID Connect Core 1.0 §3.1.3.7; the
   * WIT `authenticate-id-token`): the issuer's algorithms and keys, an
   * audience naming `clientId` (and `azp` naming it when there are several
   * audiences, or whenever present), `exp` and `iat` present and current
   * with the issuer's leeway, `nonce` equal. An access token (`typ`
   * `at+jwt`) is refused (`token-wrong-type`); an issuer's `require_typ` is
   * for access tokens only. Returns a credential as `authenticate` does, its
   * principal mapped from the claims as for access tokens with `clientId` as
   * its client, and `approver` true (a sign-in is the person's own act). An
   * empty `clientId` or `nonce` is refused (`request-invalid`). For hosts
   * that sign people in to a portal.
   * @param {string} token
   * @param {string} clientId
   * @param {string} nonce
   * @param {number | bigint} now
   * @returns {import('./info.js').Credential}
   * @throws {DenialError} as `authenticate`
   */
  authenticateIdToken(token, clientId, nonce, now) {
    return checkedCredential(this.#result('authenticateIdToken', [String(token), String(clientId), String(nonce), seconds(now)]));
  }

  /**
   * Verifies a Greenlight action token at `now` with exactly the rules of
   * enforcement (signature, issuer, audience, `typ`, time claims with the
   * leeway) and returns its claims (the WIT `inspect`), e.g. for RFC 7662
   * introspection; access tokens are refused (`action-token-invalid`). What
   * only the host knows (a consumed token, a revoked approval) is for the
   * caller to add.
   * @param {string} token
   * @param {number | bigint} now
   * @returns {import('./info.js').ActionToken}
   * @throws {DenialError} with the token's denial code, or `engine-*`
   */
  inspect(token, now) {
    const ok = this.#result('inspect', [String(token), seconds(now)]);
    try {
      return actionTokenFromWit(ok);
    } catch (e) {
      if (!(e instanceof InvalidOutput)) throw e;
      throw new DenialError('engine-invalid-output', `the policy module returned a malformed action token: ${e.message}`);
    }
  }

  /**
   * The `ok` of a `result<_, denial>` call, or throws DenialError. The
   * denial's issuer is kept only when it names one of the bundle's issuers
   * (as the Rust host's `denial_with_issuer`).
   */
  #result(op, args) {
    const answer = this.#call(op, args);
    if (answer.fail !== undefined) throw new DenialError(answer.fail.code, answer.fail.message);
    if (answer.err !== undefined) {
      const [code, message] = jwsError(answer.err);
      const issuer = answer.err.issuer;
      const known = code === answer.err.code && this.#info.issuers.some((i) => i.issuer === issuer);
      throw new DenialError(code, message, known ? issuer : null);
    }
    return answer.ok;
  }

  /**
   * How many tokens this policy's instance checked, and how many of those
   * took a signature verification (the WIT `stats`). An instance that failed
   * is replaced and its counts are lost, as in the Rust host; a module that
   * cannot answer counts zero.
   * @returns {import('./info.js').EngineStats}
   */
  stats() {
    const answer = this.#call('stats', []);
    try {
      if (answer.ok !== undefined) return statsFromWit(answer.ok);
    } catch (e) {
      if (!(e instanceof InvalidOutput)) throw e;
    }
    return { token_checks: 0, signature_checks: 0 };
  }

  /**
   * The HTTP answer a gateway gives for `decision` (docs/gateway.md), with
   * the approval service at `serviceUrl` (its base URL, without a trailing
   * slash) named in challenges: the component's `gateway.respond`, the one
   * mapping every host calls. `{status: 0, headers: [], body: null}` for an
   * allow, which the upstream answers.
   *
   * Fails closed: an answer that does not fit the decision (a pass-through
   * for anything but an allow, a body that is not a JSON object, a
   * malformed header) is a 503 `engine-invalid-output`; a module that traps
   * or overruns is a 503 with that failure's code. Never throws for what
   * the module does.
   * @param {import('./decision.js').Decision} decision
   * @param {string} serviceUrl
   * @returns {import('./respond.js').Answer}
   */
  respond(decision, serviceUrl) {
    const url = text(serviceUrl, 'serviceUrl');
    let checked;
    let wit;
    try {
      checked = checkDecision(decision);
      wit = toWit(checked);
    } catch (e) {
      if (!(e instanceof InvalidOutput)) throw e;
      return unavailable('engine-invalid-output', `the decision cannot be answered: ${e.message}`);
    }
    const answer = this.#call('respond', [wit, url]);
    if (answer.fail !== undefined) return unavailable(answer.fail.code, answer.fail.message);
    try {
      return checkAnswer(answer.ok, checked);
    } catch (e) {
      if (!(e instanceof InvalidOutput)) throw e;
      return unavailable('engine-invalid-output', `the policy module answered wrongly: ${e.message}`);
    }
  }

  /** The hash of the component deciding (`engine.componentHash`). */
  get componentHash() {
    return this.#engine.componentHash;
  }

  /**
   * The key changes made since loading, the last per issuer, as
   * `[issuer, op, arg]` (`op` `setKeys` or `withdrawKeys`): what a reloaded
   * bundle starts with for issuers whose keys come from the same place.
   * @returns {[string, string, string][]}
   */
  keyChanges() {
    return this.#replay();
  }

  /**
   * Runs policy tests against this bundle (the WIT `run-tests`): `files`
   * are the `[name, contents]` of a bundle's `tests/*.toml` (readTestsDir);
   * a file without `now` decides at `now`. Each outcome's `failure` is null
   * when it passed. Tests run within the load budget.
   * @param {[string, string][]} files
   * @param {number} now
   * @returns {{name: string, failure: string | null}[]}
   * @throws {Error} when a file is not a test file, saying which
   * @throws {DenialError} `engine-*` when the module fails or answers wrongly
   */
  runTests(files, now) {
    if (!Array.isArray(files) || !files.every((f) => Array.isArray(f) && f.length === 2 && f.every((s) => typeof s === 'string'))) {
      throw new TypeError('files must be [name, contents] pairs of strings');
    }
    const answer = this.#call('runTests', [files, seconds(now)], this.#engine.loadBudgetMs);
    if (answer.fail !== undefined) throw new DenialError(answer.fail.code, answer.fail.message);
    if (answer.err !== undefined) {
      if (typeof answer.err !== 'string') throw new DenialError('engine-invalid-output', 'the policy module answered the tests wrongly: not a message');
      throw new Error(answer.err.slice(0, MAX_GUEST_STRING));
    }
    const wrong = (why) => new DenialError('engine-invalid-output', `the policy module answered the tests wrongly: ${why}`);
    if (!Array.isArray(answer.ok)) throw wrong('not a list');
    if (answer.ok.length > MAX_TESTS) throw wrong(`${answer.ok.length} test outcomes`);
    return answer.ok.map((o) => {
      const name = o?.name;
      const failure = o?.failure ?? null;
      if (typeof name !== 'string' || name.length > MAX_GUEST_STRING) throw wrong('a test without a name');
      if (failure !== null && (typeof failure !== 'string' || failure.length > MAX_GUEST_STRING)) throw wrong('a malformed failure');
      return { name, failure };
    });
  }

  /** Stops this policy's worker thread. A later call starts a new one. */
  close() {
    this.#instance?.close();
    this.#instance = null;
  }
}

/** The most policy-test outcomes a module may return (as the Rust host). */
const MAX_TESTS = 10_000;

/**
 * Reads a bundle folder's policy tests (`tests/*.toml` regular files) into
 * `[name, contents]` pairs, sorted by name; none when it has no `tests`
 * folder (as the Rust `policytest::read_files`).
 * @param {string} dir
 * @returns {[string, string][]}
 */
export function readTestsDir(dir) {
  const tests = join(dir, 'tests');
  if (!existsSync(tests)) return [];
  const utf8 = new TextDecoder('utf-8', { fatal: true });
  return readdirSync(tests, { withFileTypes: true })
    .filter((e) => e.name.endsWith('.toml') && e.isFile())
    .map((e) => e.name)
    .sort()
    .map((n) => {
      try {
        return [n, utf8.decode(readFileSync(join(tests, n)))];
      } catch (e) {
        throw new Error(`${join(tests, n)}: ${e.message}`);
      }
    });
}

/**
 * The credential of a module's answer; a malformed one is a DenialError
 * `engine-invalid-output`, as the Rust host refuses it.
 * @returns {import('./info.js').Credential}
 */
function checkedCredential(ok) {
  try {
    return credentialFromWit(ok);
  } catch (e) {
    if (!(e instanceof InvalidOutput)) throw e;
    throw new DenialError('engine-invalid-output', `the policy module returned a malformed credential: ${e.message}`);
  }
}

/** Unix seconds as the u64 the WIT wants. */
function seconds(now) {
  const n = typeof now === 'bigint' ? now : Number.isSafeInteger(now) ? BigInt(now) : null;
  if (n === null || n < 0n || n >= 2n ** 64n) throw new TypeError('now must be a non-negative integer of Unix seconds');
  return n;
}

function text(v, what) {
  if (typeof v !== 'string') throw new TypeError(`${what} must be a string`);
  return v;
}

/** JSON text, an object to serialise, or none (null). */
function json(v, what) {
  if (v === null || v === undefined) return null;
  return typeof v === 'string' ? v : JSON.stringify(v) ?? text(v, what);
}

/** An HTTP request in the JSON form `decide-json` reads (the Rust `HttpRequest`). */
function httpRequest(r) {
  const headers = Array.isArray(r.headers) ? r.headers : Object.entries(r.headers ?? {});
  return {
    method: text(r.method, 'method'),
    path: text(r.path, 'path'),
    query: text(r.query ?? '', 'query'),
    headers: headers.map(([k, v]) => [text(k, 'a header name'), text(v, 'a header value')]),
    params: json(r.params, 'params'),
    entities: json(r.entities, 'entities'),
  };
}

/** A list of strings (a lone string is refused, not split). */
function texts(v, what) {
  if (!Array.isArray(v)) throw new TypeError(`${what} must be an array of strings`);
  return v.map((s) => text(s, `an entry of ${what}`));
}

/**
 * A vouched subject in the JSON form `decide-json` reads (the Rust
 * `Principal`); the lists default to empty, client id and tenant to ''.
 */
function principal(p) {
  if (p === null || typeof p !== 'object') throw new TypeError('the subject must be a principal object');
  return {
    entity_type: text(p.entity_type ?? p.entityType, 'entity_type'),
    subject: text(p.subject, 'subject'),
    client_id: text(p.client_id ?? p.clientId ?? '', 'client_id'),
    scopes: texts(p.scopes ?? [], 'scopes'),
    groups: texts(p.groups ?? [], 'groups'),
    roles: texts(p.roles ?? [], 'roles'),
    tenant: text(p.tenant ?? '', 'tenant'),
    issuer: text(p.issuer, 'issuer'),
    attributes: principalAttributes(p.attributes ?? {}),
  };
}

/** A vouched subject's attributes (name -> `{kind: value}`), checked; BigInts as numbers. */
function principalAttributes(a) {
  try {
    return attributes(a);
  } catch (e) {
    if (!(e instanceof InvalidOutput)) throw e;
    throw new TypeError(`the subject's attributes are malformed: ${e.message}`);
  }
}

/** An AuthZEN-shaped request in the JSON form `decide-json` reads (the Rust `AccessRequest`). */
function accessRequest(r) {
  return {
    token: text(r.token, 'token'),
    action: text(r.action, 'action'),
    resource_type: text(r.resource_type ?? r.resourceType, 'resource_type'),
    resource_id: text(r.resource_id ?? r.resourceId, 'resource_id'),
    resource_properties: json(r.resource_properties ?? r.resourceProperties, 'resource_properties'),
    context: json(r.context, 'context'),
    entities: json(r.entities, 'entities'),
  };
}
