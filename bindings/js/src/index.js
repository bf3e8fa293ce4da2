// @greenlight/wasm: Greenlight's policy module (greenlight.wasm) for Node.
//
//   const engine = await Engine.load();
//   const policy = engine.loadBundleDir('examples/bundle');
//   const decision = policy.evaluateHttp({method, path, query, headers, params}, now);
//   JSON.stringify(decision);              // exactly what `greenlight check` prints
//   policy.respond(decision, serviceUrl);  // the HTTP answer of docs/gateway.md, from the component

export { Engine, Policy, BundleError, DenialError, readBundleDir, readTestsDir } from './engine.js';
export { LivePolicy } from './live.js';
export { DENIAL_CODES, checkDecision, denied, needsService } from './decision.js';
export { greenlight, withGreenlight } from './middleware.js';
export { KeySources, checkUrl, freshness, refreshIssuer } from './keys.js';
