// One policy module instance, in a worker thread of its own so the host can
// stop it at its time budget (worker.terminate()), as wasmtime's epoch
// interruption does for the Rust host. The calling thread waits on `flag`
// and reads the answer with receiveMessageOnPort (engine.js).
//
// Protocol: the first message on `port` is the start-up answer (the
// module's `describe` of the bundle, or null for a worker without one), then
// one answer per request `{op, args}`. An answer is `{ok: value}`, `{err:
// payload}` for a WIT `err` result, or `{fail: {code, message}}` when the
// module trapped or misbehaved (the caller then discards this worker).

import { workerData } from 'node:worker_threads';
import { cryptoImports } from './crypto.js';
import { emptyWasi } from './wasi.js';

const { port, flag, glue, modules, files, keys, memoryBytes, nativeSignatures, nativeChecks } = workerData;

function answer(message) {
  port.postMessage(message);
  Atomics.store(flag, 0, 1);
  Atomics.notify(flag, 0);
}

/** A thrown value that carries a WIT `err` payload (jco's ComponentError). */
function isComponentError(e) {
  return e !== null && typeof e === 'object' && Object.hasOwn(e, 'payload');
}

let wasi;

/** The failure class of anything thrown from the module other than a WIT `err`. */
function failure(e) {
  // Rust's allocator prints this before aborting when memory cannot grow
  // (the memory cap is the module's declared maximum, set by engine.js).
  if (wasi?.output().includes('memory allocation of')) {
    return { code: 'engine-memory-exceeded', message: `the policy module ran past its memory cap of ${memoryBytes} bytes` };
  }
  const what = e instanceof Error ? e.message : String(e);
  return e instanceof WebAssembly.RuntimeError
    ? { code: 'engine-trap', message: `the policy module trapped (${what})` }
    : { code: 'engine-trap', message: `the policy module failed: ${what}` };
}

function run(f) {
  try {
    answer({ ok: f() });
  } catch (e) {
    answer(isComponentError(e) ? { err: e.payload } : { fail: failure(e) });
  }
}

let root;
let policy;
try {
  const { instantiate } = await import(glue);
  wasi = emptyWasi({ 'greenlight:approval/crypto': cryptoImports(nativeSignatures, nativeChecks) });
  root = await instantiate(
    (name) => modules[name],
    wasi.imports,
    (module, imports) => new WebAssembly.Instance(module, imports),
  );
} catch (e) {
  answer({ fail: failure(e) });
  process.exit(0);
}

// The key changes a policy may replay: `[issuer, op, arg]`.
const keyChanges = {
  setKeys: (issuer, jwks) => policy.setKeys(issuer, jwks),
  withdrawKeys: (issuer, reason) => policy.withdrawKeys(issuer, reason),
};

// Load the bundle and replay the key changes made so far (set or
// withdrawn, the last per issuer); a bundle-less worker only serves `jose`.
run(() => {
  if (files === null) return null;
  policy = root.engine.Policy.load(files);
  for (const [issuer, op, arg] of keys) keyChanges[op](issuer, arg);
  return policy.describe();
});

const ops = {
  // Every decision: the request and the decision as one JSON text each.
  decideJson: (request, now) => policy.decideJson(request, now),
  authenticate: (token, now) => policy.authenticate(token, now),
  authenticateIdToken: (token, clientId, nonce, now) => policy.authenticateIdToken(token, clientId, nonce, now),
  inspect: (token, now) => policy.inspect(token, now),
  stats: () => policy.stats(),
  runTests: (files, now) => policy.runTests(files, now),
  ...keyChanges,
  verifyCompact: (token, jwk) => root.jose.verifyCompact(token, jwk),
  // The free function of `greenlight:approval/gateway`: the HTTP answer for a decision.
  respond: (decision, serviceUrl) => root.gateway.respond(decision, serviceUrl),
};

port.on('message', ({ op, args }) => run(() => ops[op](...args)));
