// Issuers' keys from their providers, as `greenlight serve` keeps them
// (crates/server/src/serve/keysource): the `jwks_uri` the bundle names, or
// the one the provider's metadata names (OpenID Connect discovery, then
// RFC 8414), fetched over HTTPS with the bundle's `[key_fetch]` limits,
// cached as the provider's `Cache-Control`/`Expires` say (within the
// configured minimum and maximum ages), refreshed in the background before
// they expire, at once (rate-limited) when a token names a `kid` the set
// lacks, and kept through failed fetches up to the configured staleness.
// Keys reach the engine through `policy.setKeys` only; an issuer that has
// none (not fetched yet, or too stale) is withdrawn (`policy.withdrawKeys`)
// with the reason, so its tokens are denied with a message that names the
// last fetch error. The error texts are those of the Rust server.

import { createHash } from 'node:crypto';
import { BundleError, DenialError } from './engine.js';

/**
 * @typedef {object} KeySourcesOptions
 * @property {() => number} [now] the clock, in Unix seconds (whole or not;
 *   it is floored): freshness, staleness, the unknown-`kid` interval and the
 *   ages in `health()` all read it. The wall clock by default; tests inject
 *   one to drive freshness deterministically.
 * @property {typeof globalThis.fetch} [fetch] the fetch to use; the global
 *   one by default.
 * @property {(message: string) => void} [log] where failed fetches and
 *   withdrawals are reported; console.warn by default.
 */

/**
 * What `health()` says of one fetched issuer: the entries of the Rust
 * server's `/healthz` `keys`.
 * @typedef {{issuer: string, source: 'jwks_uri' | 'discovery', jwks_uri: string | null,
 *            keys: boolean, kids: string[], age_seconds: number | null,
 *            fresh_for_seconds: number | null, last_error: string | null}} KeyHealth
 */

/**
 * Whether `hostname` (as the WHATWG URL parser gives it) is loopback:
 * `localhost`, an IPv4 address in 127.0.0.0/8, or `[::1]` (in any of its
 * spellings, which the parser normalises to `[::1]`).
 */
function isLoopback(hostname) {
  return hostname === 'localhost' || hostname === '[::1]' || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(hostname);
}

/**
 * Checks that `url` may be fetched: `https://`, or `http://` to a loopback
 * address when the bundle allows it. Returns the parsed URL; throws an Error
 * whose message is the Rust server's.
 * @param {string} url
 * @param {{allow_http_loopback: boolean}} settings
 * @returns {URL}
 */
export function checkUrl(url, settings) {
  let parsed;
  try {
    parsed = new URL(url);
  } catch (e) {
    throw new Error(`\`${url}\` is not a URL: ${e.message}`);
  }
  if (parsed.protocol === 'https:') return parsed;
  if (parsed.protocol === 'http:' && isLoopback(parsed.hostname)) {
    if (settings.allow_http_loopback) return parsed;
    throw new Error(`\`${url}\` is plain HTTP: allowed for loopback only with \`[key_fetch] allow_http_loopback = true\``);
  }
  throw new Error(`\`${url}\` is not HTTPS`);
}

const MONTHS = ['jan', 'feb', 'mar', 'apr', 'may', 'jun', 'jul', 'aug', 'sep', 'oct', 'nov', 'dec'];

/**
 * An HTTP date (RFC 9110 §5.6.7: IMF-fixdate, or the obsolete RFC 850 and
 * asctime forms) in milliseconds, or null when it is none of them (as the
 * Rust `httpdate` crate; `Date.parse` would take far more, such as `0`).
 * @param {string} text
 * @returns {number | null}
 */
export function parseHttpDate(text) {
  const t = text.trim();
  let m = /^[A-Za-z]{3}, (\d{2}) ([A-Za-z]{3}) (\d{4}) (\d{2}):(\d{2}):(\d{2}) GMT$/.exec(t);
  let day, month, year, hh, mm, ss;
  if (m) {
    [, day, month, year, hh, mm, ss] = m;
  } else if ((m = /^[A-Za-z]+, (\d{2})-([A-Za-z]{3})-(\d{2}) (\d{2}):(\d{2}):(\d{2}) GMT$/.exec(t))) {
    [, day, month, year, hh, mm, ss] = m;
    year = Number(year) < 70 ? `20${year}` : `19${year}`;
  } else if ((m = /^[A-Za-z]{3} ([A-Za-z]{3}) ([ \d]\d) (\d{2}):(\d{2}):(\d{2}) (\d{4})$/.exec(t))) {
    [, month, day, hh, mm, ss, year] = m;
  } else {
    return null;
  }
  const mon = MONTHS.indexOf(month.toLowerCase());
  const [d, h, mi, s] = [Number(day), Number(hh), Number(mm), Number(ss)];
  if (mon < 0 || d < 1 || d > 31 || h > 23 || mi > 59 || s > 60) return null;
  const ms = Date.UTC(Number(year), mon, d, h, mi, s);
  // A day past the month's end (31 Feb) is invalid, not the next month.
  return new Date(ms).getUTCDate() === d ? ms : null;
}

/**
 * How long a response stays fresh in seconds (RFC 9111 §4.2.1):
 * `no-store` or `no-cache` makes it 0, then `max-age`, then `Expires` less
 * `Date` (the wall clock without a `Date`; an invalid `Expires` is 0); null
 * when the response states none.
 * @param {Headers} headers
 * @returns {number | null}
 */
export function freshness(headers) {
  const cc = headers.get('cache-control');
  if (cc !== null) {
    let maxAge = null;
    for (const directive of cc.split(',').map((d) => d.trim())) {
      const lower = directive.toLowerCase();
      if (lower === 'no-store' || lower === 'no-cache') return 0;
      if (lower.startsWith('max-age=')) {
        const n = lower.slice('max-age='.length).replace(/^"+|"+$/g, '');
        maxAge = /^\+?\d+$/.test(n) ? Number(n) : null;
      }
    }
    if (maxAge !== null) return maxAge;
  }
  const expires = headers.get('expires');
  if (expires === null) return null;
  const at = parseHttpDate(expires);
  if (at === null) return 0; // an invalid Expires means already expired (RFC 9111 §5.3)
  const date = headers.get('date');
  const from = (date !== null ? parseHttpDate(date) : null) ?? Date.now();
  return Math.max(0, Math.floor((at - from) / 1000));
}

/** A fetch error with its cause, as the Rust server words it ("timed out", "cannot connect: ..."). */
/** The longest error text kept, logged and given as a reason. */
const MAX_ERROR_CHARS = 512;

/**
 * An error as it is kept, logged, reported and put in denials, as the Rust
 * server keeps it: control characters as spaces, at most MAX_ERROR_CHARS
 * characters (code points).
 * @param {string} error
 */
function tidy(error) {
  const chars = [...error];
  // eslint-disable-next-line no-control-regex
  const out = chars.slice(0, MAX_ERROR_CHARS).join('').replace(/[\u0000-\u001f\u007f-\u009f]/g, ' ');
  return chars.length > MAX_ERROR_CHARS ? `${out}…` : out;
}

/**
 * A URL's host and port (the scheme's default when it has none), for
 * comparing where two URLs point.
 * @param {string} url
 */
function origin(url) {
  try {
    const u = new URL(url);
    return `${u.hostname}:${u.port || (u.protocol === 'https:' ? '443' : '80')}`;
  } catch {
    return null;
  }
}

function describe(e) {
  if (e?.name === 'TimeoutError' || e?.name === 'AbortError') return 'timed out';
  const causes = [];
  for (let c = e?.cause; c !== undefined && c !== null && causes.length < 8; c = c.cause) causes.push(c.message ?? String(c));
  const connect = /^(ECONNREFUSED|ECONNRESET|ENOTFOUND|EAI_AGAIN|EHOSTUNREACH|ENETUNREACH|UND_ERR_CONNECT_TIMEOUT|UND_ERR_SOCKET)$/;
  const head = connect.test(e?.cause?.code ?? '') ? 'cannot connect' : (e?.message ?? String(e));
  return [head, ...causes].join(': ');
}

/** Why the engine refused a key change, in its own words (as the Rust `refusal`). */
function refusal(e) {
  if (e instanceof BundleError) {
    if (e.other !== null) return e.other;
    return e.problems
      .map((p) => (p.line !== null && p.column !== null ? `${p.file}:${p.line}:${p.column}: ${p.message}`
        : p.line !== null ? `${p.file}:${p.line}: ${p.message}` : `${p.file}: ${p.message}`))
      .join('; ');
  }
  return e?.message ?? String(e);
}

/**
 * The issuer whose keys a refusal says to fetch again: a `token-unknown-key`
 * deny (a decision) or DenialError (from `authenticate`) that names an
 * `issuer`; null for anything else (as the Rust `refresh_issuer`).
 * @param {import('./decision.js').Decision | DenialError | unknown} x
 * @returns {string | null}
 */
export function refreshIssuer(x) {
  if (x instanceof DenialError) return x.code === 'token-unknown-key' && typeof x.issuer === 'string' ? x.issuer : null;
  const v = x?.verdict;
  if (v?.kind === 'deny' && v.code === 'token-unknown-key' && typeof v.issuer === 'string') return v.issuer;
  return null;
}

/** One issuer whose keys are fetched, and what is known of them. */
class Source {
  /** @param {string} issuer @param {{jwks_uri: string} | {discovery: string[]}} origin */
  constructor(issuer, origin) {
    this.issuer = issuer;
    this.origin = origin;
    /** The JWKS URL in use (from the bundle, or found by discovery). */
    this.jwksUri = origin.jwks_uri ?? null;
    /** When the keys in the engine were fetched (the clock), null before. */
    this.loadedAt = null;
    /** Until when the provider said they are fresh. */
    this.freshUntil = 0;
    /** When to fetch next. */
    this.nextFetch = 0;
    /** The `kid`s of the keys in the engine. @type {string[]} */
    this.kids = [];
    /** Why the last fetch failed, if it did. @type {string | null} */
    this.lastError = null;
    /** The reason given with the last withdrawal, until keys load. */
    this.withdrawnFor = null;
    /** SHA-256 (hex) of the key set last handed to the engine. */
    this.digest = null;
    /** Failed fetches in a row (for the backoff). */
    this.failures = 0;
    /** When a token's unknown `kid` last caused a fetch. @type {number | null} */
    this.lastUnknownKidFetch = null;
    /** The refresh an unknown `kid` started, while it runs. @type {Promise<boolean> | null} */
    this.unknownKidFetch = null;
    /** Whether the keys were withdrawn for being too stale. */
    this.withdrawn = false;
    /** The end of the fetch queue: one fetch at a time per issuer. */
    this.queue = Promise.resolve();
  }
}

/**
 * The issuers of a policy whose keys the host fetches (`keys` other than
 * `'bundle'` in `policy.info.issuers`), kept as `greenlight serve` keeps
 * them, with the same `[key_fetch]` settings (`policy.info.key_fetch`):
 *
 * - Fetches use `fetch` with `redirect: 'manual'` (a 30x is a failure, never
 *   followed), HTTPS only (plain HTTP to a loopback address, `localhost`,
 *   127.0.0.0/8 or `[::1]`, when `allow_http_loopback`), at most `max_bytes`
 *   of body (a larger `content-length` is refused at once, and the body is
 *   not read past the cap), status 200 only. `timeout_ms` bounds each whole
 *   fetch (`AbortSignal.timeout`); global fetch has no separate connect
 *   timeout, so `connect_timeout_ms` is bounded by `timeout_ms` here.
 * - Discovery tries the metadata URLs in order; the first whose `issuer` is
 *   exactly the issuer's names the `jwks_uri` (checked as above) to fetch.
 *   After a failure the next fetch discovers again.
 * - A key set must be a JSON object with a `keys` array; the engine checks
 *   the keys (`setKeys` refuses private members, wrong lengths, shared
 *   secrets for issuers that allow no HS algorithm).
 * - A set is fresh for the response's `Cache-Control` (`no-store`/`no-cache`:
 *   0, else `max-age`), else `Expires` less `Date`, else `min_age_seconds`,
 *   clamped to [`min_age_seconds`, `max_age_seconds`]; it is fetched again at
 *   3/4 of that.
 * - A failed fetch keeps the last good keys and retries after 2^n s (n
 *   failures in a row), at most `min_age_seconds`. An issuer that never got
 *   keys is withdrawn with `fetching its keys failed: <error>`; keys older
 *   than their freshness plus `max_stale_seconds` are withdrawn with `its
 *   keys are too stale: fetched N s ago, fresh for M s, and no fetch has
 *   worked since (<error>)`. A fetch that works gives them back.
 *
 * `start()` does the first fetch of every issuer and then the background
 * work, once a second on an unref'd timer (against the injected clock);
 * `close()` stops it. A host that fetches keys also calls
 * `unknownKid(issuer)` after a denial naming an issuer (see
 * `refreshIssuer`) and decides once more when it resolves true.
 */
export class KeySources {
  /** @type {Source[]} */
  #sources = [];
  /** Key changes in the engine (see `changes`). */
  #changes = 0;
  #settings;
  #policy;
  #now;
  #fetch;
  #log;
  #timer = null;
  #started = null;
  #closed = false;
  #ticking = null;
  #tickQueue = Promise.resolve();

  /**
   * @param {import('./engine.js').Policy} policy the loaded bundle; its
   *   `info` names the issuers and settings, its `setKeys`/`withdrawKeys`
   *   take the keys.
   * @param {KeySourcesOptions} [options]
   * @throws {Error} for a URL that is neither HTTPS nor (when the bundle
   *   allows it) plain HTTP to loopback, naming the issuer
   */
  constructor(policy, options = {}) {
    const info = policy.info;
    this.#policy = policy;
    this.#settings = info.key_fetch;
    this.#now = options.now ?? (() => Date.now() / 1000);
    this.#fetch = options.fetch ?? ((...args) => globalThis.fetch(...args));
    this.#log = options.log ?? ((m) => console.warn(`greenlight: ${m}`));
    for (const i of info.issuers) {
      const k = i.keys;
      if (k === 'bundle') continue;
      if (k.jwks_uri !== undefined) {
        try {
          checkUrl(k.jwks_uri, this.#settings);
        } catch (e) {
          throw new Error(`issuer \`${i.issuer}\`: jwks_uri ${e.message}`);
        }
        this.#sources.push(new Source(i.issuer, { jwks_uri: k.jwks_uri }));
      } else {
        for (const u of k.discovery) {
          try {
            checkUrl(u, this.#settings);
          } catch (e) {
            throw new Error(`issuer \`${i.issuer}\`: its metadata URL ${e.message}`);
          }
        }
        this.#sources.push(new Source(i.issuer, { discovery: [...k.discovery] }));
      }
    }
  }

  /** The clock in whole seconds. */
  #clock() {
    return Math.floor(this.#now());
  }

  /** Whether no issuer's keys are fetched. */
  get isEmpty() {
    return this.#sources.length === 0;
  }

  /** The issuers whose keys are fetched, in the bundle's order. @returns {string[]} */
  get issuers() {
    return this.#sources.map((s) => s.issuer);
  }

  /**
   * GETs `url` as JSON: status 200, at most `max_bytes`. Returns the body
   * and the response's freshness in seconds (null when it states none).
   * Throws an Error whose message is the Rust server's.
   */
  async #get(url) {
    const parsed = checkUrl(url, this.#settings);
    const shown = parsed.href;
    let response;
    try {
      response = await this.#fetch(shown, {
        headers: { accept: 'application/json' },
        redirect: 'manual', // a 30x is a status other than 200: a failure, never followed
        signal: AbortSignal.timeout(this.#settings.timeout_ms),
      });
    } catch (e) {
      throw new Error(`GET ${shown}: ${describe(e)}`);
    }
    const discard = () => response.body?.cancel().catch(() => {});
    if (response.status !== 200) {
      discard();
      throw new Error(`GET ${shown}: status ${response.status}`);
    }
    const cap = this.#settings.max_bytes;
    const length = response.headers.get('content-length');
    if (length !== null && /^\d+$/.test(length.trim()) && Number(length) > cap) {
      discard();
      throw new Error(`GET ${shown}: the body is larger than ${cap} bytes`);
    }
    const maxAge = freshness(response.headers);
    const chunks = [];
    let size = 0;
    if (response.body !== null) {
      const reader = response.body.getReader();
      try {
        for (;;) {
          const { done, value } = await reader.read();
          if (done) break;
          if (size + value.length > cap) {
            reader.cancel().catch(() => {});
            throw new Error(`GET ${shown}: the body is larger than ${cap} bytes`);
          }
          size += value.length;
          chunks.push(value);
        }
      } catch (e) {
        if (e.message?.startsWith(`GET ${shown}: `)) throw e;
        throw new Error(`GET ${shown}: ${describe(e)}`);
      }
    }
    let body;
    try {
      body = new TextDecoder('utf-8', { fatal: true }).decode(Buffer.concat(chunks));
    } catch {
      throw new Error(`GET ${shown}: the body is not UTF-8`);
    }
    return { body, maxAge };
  }

  /**
   * The issuer's `jwks_uri` from the first of its metadata documents that
   * answers (OpenID Connect Discovery 1.0 §4, RFC 8414 §3); the document's
   * `issuer` must be exactly the issuer's.
   */
  async #discover(issuer, urls) {
    const errors = [];
    for (const url of urls) {
      try {
        const { body } = await this.#get(url);
        let doc;
        try {
          doc = JSON.parse(body);
        } catch (e) {
          throw new Error(`${url}: not JSON: ${e.message}`);
        }
        if (doc === null || typeof doc !== 'object' || doc.issuer !== issuer) {
          throw new Error(`${url}: its \`issuer\` is not \`${issuer}\``);
        }
        const uri = doc.jwks_uri;
        if (typeof uri !== 'string') throw new Error(`${url}: no \`jwks_uri\``);
        try {
          checkUrl(uri, this.#settings);
        } catch (e) {
          throw new Error(`${url}: jwks_uri ${e.message}`);
        }
        // Only on the issuer's own host (and port), as the Rust server: a
        // provider cannot send the host to another machine of its network;
        // a JWKS elsewhere is named in the bundle.
        if (origin(uri) !== origin(url)) {
          throw new Error(`${url}: its jwks_uri \`${uri}\` is not on the issuer's host; to trust it, name it as \`jwks_uri\` in the bundle`);
        }
        return uri;
      } catch (e) {
        errors.push(e.message);
      }
    }
    throw new Error(`discovery failed: ${errors.join('; ')}`);
  }

  /** Fetches a key set: `{body, kids, maxAge}`; refuses one that is not a JSON object with a `keys` array. */
  async #jwks(url) {
    const { body, maxAge } = await this.#get(url);
    let doc;
    try {
      doc = JSON.parse(body);
    } catch (e) {
      throw new Error(`GET ${url}: not JSON: ${e.message}`);
    }
    const keys = doc !== null && typeof doc === 'object' && !Array.isArray(doc) ? doc.keys : undefined;
    if (!Array.isArray(keys)) throw new Error(`GET ${url}: not a JWKS (no \`keys\` array)`);
    const kids = keys.filter((k) => typeof k?.kid === 'string').map((k) => k.kid);
    return { body, kids, maxAge };
  }

  /** Runs `task` after the issuer's previous fetch: one fetch at a time per issuer. */
  #serialised(source, task) {
    const run = source.queue.then(task);
    source.queue = run.catch(() => {});
    return run;
  }

  /**
   * Fetches `source`'s keys now and hands them to the engine. Resolves
   * whether the engine's keys changed.
   * @returns {Promise<boolean>}
   */
  #refresh(source, why) {
    return this.#serialised(source, async () => {
      const now = this.#clock();
      const s = this.#settings;
      let uri;
      let fetched;
      try {
        uri = source.jwksUri ?? source.origin.jwks_uri ?? (await this.#discover(source.issuer, source.origin.discovery));
        fetched = await this.#jwks(uri);
        // The same set as the engine holds: nothing to hand over (a change
        // restarts the engine's workers' key state).
        const digest = createHash('sha256').update(fetched.body).digest('hex');
        if (source.digest !== digest || source.withdrawn) {
          try {
            this.#policy.setKeys(source.issuer, fetched.body);
          } catch (e) {
            throw new Error(`the key set was refused: ${refusal(e)}`);
          }
          source.digest = digest;
        }
      } catch (e) {
        const error = tidy(String(e?.message ?? e));
        this.#log(`fetching the keys of \`${source.issuer}\` failed (${why}); the last good keys keep serving: ${error}`);
        source.failures += 1;
        // Retry with a backoff: 1 s doubling, at most the minimum age.
        const backoff = Math.min(2 ** Math.min(source.failures, 16), Math.max(s.min_age_seconds, 1));
        source.nextFetch = now + backoff;
        // The provider may have moved its keys: ask again.
        if (source.origin.discovery !== undefined) source.jwksUri = null;
        source.lastError = error;
        const reason = `fetching its keys failed: ${error}`;
        // Said once per reason: a withdrawal is a key change for the engine.
        if (source.loadedAt === null && source.withdrawnFor !== reason) {
          try {
            this.#policy.withdrawKeys(source.issuer, reason);
            source.withdrawnFor = reason;
          } catch (w) {
            this.#log(`cannot record why \`${source.issuer}\` has no keys: ${w.message}`);
          }
        }
        return false;
      }
      const age = Math.min(Math.max(fetched.maxAge ?? s.min_age_seconds, s.min_age_seconds), s.max_age_seconds);
      const changed = source.withdrawn || source.loadedAt === null ||
        source.kids.length !== fetched.kids.length || source.kids.some((k, i) => k !== fetched.kids[i]);
      source.jwksUri = uri;
      source.loadedAt = now;
      source.freshUntil = now + age;
      // Before they expire: at three quarters of their life.
      source.nextFetch = now + Math.max(Math.floor((age * 3) / 4), 1);
      source.kids = fetched.kids;
      source.lastError = null;
      source.failures = 0;
      source.withdrawn = false;
      source.withdrawnFor = null;
      if (changed) this.#changes += 1;
      return changed;
    });
  }

  /**
   * Fetches every issuer's keys once, one after the other (at start: the
   * host then begins with keys where the providers answered, and fails
   * closed, saying why, where they did not). Never rejects.
   * @returns {Promise<void>}
   */
  async fetchAll() {
    for (const s of this.#sources) if (!s.adopted) await this.#refresh(s, 'start');
  }

  /**
   * Starts a new version of the bundle with the keys `old` (the KeySources
   * of the version it replaces) holds for every issuer whose keys come from
   * the same place, so a reload neither refetches them nor loses them while
   * a provider is down (as the Rust server's `KeySources::adopt`); `start()`
   * then fetches only the others'. The policy must already hold those keys
   * (LivePolicy.reload hands them over); their fetch state is taken here.
   * @param {KeySources | null} old
   */
  adopt(old) {
    if (old === null || old === undefined) return;
    // The old version's keys now, with their fetch state now: one
    // synchronous snapshot, so a fetch of the old version's made since the
    // policy was reloaded cannot pair its newer state with older keys.
    const held = new Map(old.#policy.keyChanges().map(([issuer, op, arg]) => [issuer, [op, arg]]));
    const has = new Map(this.#policy.keyChanges().map(([issuer, op, arg]) => [issuer, [op, arg]]));
    for (const s of this.#sources) {
      const o = old.#sources.find((x) => x.issuer === s.issuer);
      const h = held.get(s.issuer);
      if (o === undefined || h === undefined || JSON.stringify(o.origin) !== JSON.stringify(s.origin)) continue;
      // LivePolicy.reload handed them over already unless they changed since.
      const same = has.get(s.issuer)?.[0] === h[0] && has.get(s.issuer)?.[1] === h[1];
      try {
        if (same) {
          // nothing to hand over
        } else if (h[0] === 'setKeys') this.#policy.setKeys(s.issuer, h[1]);
        else this.#policy.withdrawKeys(s.issuer, h[1]);
      } catch {
        continue; // fetched at start instead
      }
      for (const k of ['jwksUri', 'loadedAt', 'freshUntil', 'nextFetch', 'lastError', 'withdrawnFor', 'digest',
        'failures', 'lastUnknownKidFetch', 'withdrawn']) s[k] = o[k];
      s.kids = [...o.kids];
      s.adopted = true;
    }
  }

  /**
   * Withdraws the keys of issuers whose last good set is older than its
   * freshness plus the allowed staleness, so their tokens fail closed.
   */
  #expireStale() {
    const now = this.#clock();
    for (const s of this.#sources) {
      const limit = s.freshUntil + this.#settings.max_stale_seconds;
      if (s.loadedAt !== null && !s.withdrawn && now > limit) {
        const reason = `its keys are too stale: fetched ${Math.max(0, now - s.loadedAt)} s ago, ` +
          `fresh for ${Math.max(0, s.freshUntil - s.loadedAt)} s, and no fetch has worked since (${s.lastError ?? 'no error recorded'})`;
        this.#log(`withdrawing the keys of \`${s.issuer}\`: ${reason}`);
        try {
          this.#policy.withdrawKeys(s.issuer, reason);
          s.withdrawn = true;
          s.kids = [];
        } catch (e) {
          this.#log(`cannot withdraw the keys of \`${s.issuer}\`: ${e.message}`);
        }
      }
    }
  }

  /**
   * One round of the background work (what `start()` runs every second):
   * fetches the keys that are due by the clock, then withdraws those that
   * grew too stale. Rounds run one after another; never rejects.
   * @returns {Promise<void>}
   */
  tick() {
    const run = this.#tickQueue.then(async () => {
      const now = this.#clock();
      for (const s of this.#sources) {
        if (s.nextFetch <= now) await this.#refresh(s, 'due');
      }
      this.#expireStale();
    });
    this.#tickQueue = run.catch(() => {});
    return this.#tickQueue;
  }

  /**
   * Fetches every issuer's keys (`fetchAll`), then runs `tick()` once a
   * second on an unref'd timer (a round still running skips the next)
   * until `close()`. Calling it again returns the same promise.
   * @returns {Promise<void>} resolves after the first fetches
   */
  start() {
    this.#closed = false;
    this.#started ??= this.fetchAll().then(() => {
      if (this.#closed || this.#timer !== null) return;
      this.#timer = setInterval(() => {
        if (this.#ticking !== null) return;
        this.#ticking = this.tick().finally(() => {
          this.#ticking = null;
        });
      }, 1000);
      this.#timer.unref();
    });
    return this.#started;
  }

  /** Stops the background work (a fetch under way finishes); `start()` begins it again. */
  close() {
    this.#closed = true;
    if (this.#timer !== null) clearInterval(this.#timer);
    this.#timer = null;
    this.#started = null;
  }

  /**
   * How many times any issuer's keys changed in the engine: read it before
   * deciding and hand it to `unknownKid`, so that a change made meanwhile
   * (by a fetch another request started) is seen.
   * @returns {number}
   */
  get changes() {
    return this.#changes;
  }

  /**
   * After a denial for a `kid` that `issuer`'s keys lack, for a request
   * decided when `changes` was `seen`: resolves whether it is worth
   * deciding again. It is when keys changed since (another request's fetch
   * or the background refresh, awaited if under way: a rotation's first
   * requests all pass); otherwise the keys are fetched at once unless an
   * unknown `kid` already did less than `unknown_kid_interval_seconds` ago
   * for that issuer (a flood of made-up `kid`s makes no flood of fetches),
   * and it is when they changed. False for an issuer whose keys are not
   * fetched. Never rejects.
   * @param {string} issuer
   * @param {number} [seen] `changes` before the decision (default: now)
   * @returns {Promise<boolean>}
   */
  async unknownKid(issuer, seen = this.#changes) {
    const source = this.#sources.find((s) => s.issuer === issuer);
    if (source === undefined) return false;
    if (this.#changes !== seen) return true;
    // Any fetch of this issuer under way first.
    await source.queue;
    if (this.#changes !== seen) return true;
    const now = this.#clock();
    const last = source.lastUnknownKidFetch;
    if (last !== null && now < last + this.#settings.unknown_kid_interval_seconds) {
      // Another request's unknown-kid fetch, started after ours decided.
      if (source.unknownKidFetch !== null) await source.unknownKidFetch;
      return this.#changes !== seen;
    }
    source.lastUnknownKidFetch = now;
    const run = this.#refresh(source, 'unknown kid');
    source.unknownKidFetch = run;
    try {
      await run;
    } finally {
      if (source.unknownKidFetch === run) source.unknownKidFetch = null;
    }
    return this.#changes !== seen;
  }

  /**
   * Runs `decide` (a decision, or a call such as `policy.authenticate` that
   * may throw a DenialError), and when its answer names an issuer whose
   * keys lack the token's `kid` (`refreshIssuer`), fetches that issuer's
   * keys (`unknownKid`) and, if they changed, runs it once more.
   * @template T
   * @param {() => T} decide
   * @returns {Promise<T>}
   */
  async retry(decide) {
    const seen = this.#changes;
    let first;
    try {
      first = decide();
    } catch (e) {
      const issuer = refreshIssuer(e);
      if (issuer !== null && (await this.unknownKid(issuer, seen))) return decide();
      throw e;
    }
    const issuer = refreshIssuer(first);
    if (issuer !== null && (await this.unknownKid(issuer, seen))) return decide();
    return first;
  }

  /**
   * What the Rust server's `/healthz` says of each fetched issuer's keys,
   * in the bundle's order.
   * @returns {KeyHealth[]}
   */
  health() {
    const now = this.#clock();
    return this.#sources.map((s) => ({
      issuer: s.issuer,
      source: s.origin.jwks_uri !== undefined ? 'jwks_uri' : 'discovery',
      jwks_uri: s.jwksUri,
      keys: s.loadedAt !== null && !s.withdrawn,
      kids: [...s.kids],
      age_seconds: s.loadedAt === null ? null : Math.max(0, now - s.loadedAt),
      fresh_for_seconds: s.loadedAt === null ? null : Math.max(0, s.freshUntil - now),
      last_error: s.lastError,
    }));
  }

  /** Whether every fetched issuer has keys in the engine now. */
  get allLoaded() {
    return this.#sources.every((s) => s.loadedAt !== null && !s.withdrawn);
  }
}
