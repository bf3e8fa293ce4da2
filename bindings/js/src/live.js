// Live policy in the Node host: the bundle a gateway decides with, swapped
// whole by `reload()` as `greenlight serve` swaps it (docs/live-policy.md).

import { BundleError, DenialError, readTestsDir } from './engine.js';

/**
 * The outcome of a reload, as `greenlight serve`'s `POST /v1/admin/reload`
 * answers: `outcome` is `swapped`, `unchanged` or `refused`; the hashes name
 * the version deciding after the attempt; `detail` says why it was refused,
 * or the tests' summary.
 * @typedef {{outcome: 'swapped' | 'unchanged' | 'refused', policy_hash: string,
 *            component_hash: string, detail: string}} Reload
 */

/**
 * Runs the bundle's tests (`tests/*.toml`) against `policy`; throws naming
 * the failures, or returns their summary.
 */
function runBundleTests(policy, dir, now) {
  const tests = readTestsDir(dir);
  if (tests.length === 0) return 'the bundle has no tests';
  const outcomes = policy.runTests(tests, now);
  const failed = outcomes.filter((o) => o.failure !== null).map((o) => `${o.name}: ${o.failure}`);
  const summary = `${outcomes.length - failed.length} passed, ${failed.length} failed`;
  if (failed.length > 0) throw new Error(`its tests failed: ${summary}: ${failed.join('; ')}`);
  return `tests: ${summary}`;
}

/** How long a replaced policy keeps its worker for requests in flight. */
const RETIRE_AFTER_MS = 30_000;

/** Whether two issuers' keys come from the same place. */
function sameSource(a, b) {
  return JSON.stringify(a) === JSON.stringify(b);
}

/**
 * The bundle in a folder, loaded and tested, and swapped whole by `reload`.
 * Hand it to `greenlight({policy: live, ...})`: each request decides on the
 * version current when it started.
 */
export class LivePolicy {
  #engine;
  #dir;
  #now;
  #policy;

  /** @private Use `LivePolicy.load()`. */
  constructor(engine, dir, now, policy) {
    this.#engine = engine;
    this.#dir = dir;
    this.#now = now;
    this.#policy = policy;
  }

  /**
   * Loads the bundle in `dir` and runs its tests; throws (BundleError, or an
   * Error naming the failed tests) when it must not decide.
   * @param {import('./engine.js').Engine} engine
   * @param {string} dir
   * @param {{now?: () => number}} [options] the clock tests without `now` decide at
   * @returns {LivePolicy}
   */
  static load(engine, dir, options = {}) {
    const now = options.now ?? (() => Math.floor(Date.now() / 1000));
    const policy = engine.loadBundleDir(dir);
    try {
      runBundleTests(policy, dir, now());
    } catch (e) {
      policy.close();
      throw e;
    }
    return new LivePolicy(engine, dir, now, policy);
  }

  /** The policy deciding now. @returns {import('./engine.js').Policy} */
  get current() {
    return this.#policy;
  }

  /**
   * Loads what the folder holds now (in `engine` when given: a new
   * component) and swaps it in whole: it must load and pass its own tests,
   * then it gets the old version's keys for Greenlight's action tokens and
   * for every issuer whose keys come from the same place. A refused version
   * leaves the old one deciding. Never throws for a bad bundle or component.
   * @param {{engine?: import('./engine.js').Engine}} [options]
   * @returns {Reload}
   */
  reload(options = {}) {
    const old = this.#policy;
    const engine = options.engine ?? this.#engine;
    const refused = (e) => ({
      outcome: 'refused', policy_hash: old.policyHash, component_hash: old.componentHash, detail: e.message,
    });
    let policy;
    try {
      policy = engine.loadBundleDir(this.#dir);
    } catch (e) {
      if (e instanceof BundleError || e instanceof DenialError || e.code === 'ENOENT') return refused(e);
      throw e;
    }
    if (policy.policyHash === old.policyHash && policy.componentHash === old.componentHash) {
      policy.close();
      return { outcome: 'unchanged', policy_hash: old.policyHash, component_hash: old.componentHash, detail: '' };
    }
    let detail;
    try {
      detail = runBundleTests(policy, this.#dir, this.#now());
      const was = new Map(old.info.issuers.map((i) => [i.issuer, i.keys]));
      for (const i of policy.info.issuers) {
        if (was.has(i.issuer) && !sameSource(was.get(i.issuer), i.keys)) was.delete(i.issuer);
      }
      for (const [issuer, op, arg] of old.keyChanges()) {
        if (issuer !== 'greenlight' && !(was.has(issuer) && policy.info.issuers.some((i) => i.issuer === issuer))) continue;
        if (op === 'setKeys') policy.setKeys(issuer, arg);
        else policy.withdrawKeys(issuer, arg);
      }
    } catch (e) {
      policy.close();
      return refused(e);
    }
    this.#policy = policy;
    this.#engine = engine;
    // Requests that started on the old version finish on it; then its
    // worker thread stops.
    setTimeout(() => old.close(), RETIRE_AFTER_MS).unref();
    return { outcome: 'swapped', policy_hash: policy.policyHash, component_hash: policy.componentHash, detail };
  }
}
