// @greenlight/wasm: Greenlight's policy module (greenlight.wasm) for Node.
//
//   const engine = await Engine.load();
//   const policy = engine.loadBundleDir('examples/bundle');
//   const decision = policy.evaluateHttp({method, path, query, headers, params}, now);
//   JSON.stringify(decision);              // exactly what `greenlight check` prints
//   respond(decision, serviceUrl);         // the HTTP answer of docs/gateway.md

export { Engine, Policy, BundleError, DenialError, readBundleDir } from './engine.js';
export { DENIAL_CODES, checkDecision, denied } from './decision.js';
export { respond } from './respond.js';
export { greenlight, withGreenlight } from './middleware.js';
