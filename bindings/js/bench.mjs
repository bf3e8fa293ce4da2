#!/usr/bin/env node
// Per-decision latency of greenlight.wasm from Node, over the conformance
// vectors, warm (each vector's token is already in the instance's cache,
// as in the Rust bench's `warm` rows). Not a test: it prints numbers for
// BENCHMARKS.md.
//
//   node bench.mjs [iterations per vector, default 300]
//
// Two ways are measured: `worker` is the public API (the instance runs in a
// worker thread with a time budget; each call crosses threads), `inline`
// calls the same jco output in this thread, without a budget, and reads and
// checks its answer the same way (`decide-json`), to show what the thread
// crossing costs.

import { readdirSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { Engine, readBundleDir } from './src/index.js';
import { capMemory, GEN_DIR } from './src/engine.js';
import { emptyWasi } from './src/wasi.js';
import { cryptoImports } from './src/crypto.js';
import { readDecision } from './src/decision.js';

const iterations = Number(process.argv[2] ?? 300);
const root = resolve(import.meta.dirname, '..', '..');
const vectors = readdirSync(join(root, 'tests/vectors'))
  .filter((n) => n.endsWith('.json'))
  .sort()
  .map((n) => [n.replace(/\.json$/, ''), JSON.parse(readFileSync(join(root, 'tests/vectors', n), 'utf8'))]);
/** The Rust bench's cases (crates/server/benches/decision.rs), by vector. */
const CASES = { 'refund-500-eddsa': '002-', 'read-es256': '044-', 'read-rs256': '046-' };

/** A policy per bundle and key sets, made by `load(files)` and `setKeys`. */
function policies(load) {
  const cache = new Map();
  return (v) => {
    const key = JSON.stringify([v.bundle, v.keys]);
    if (!cache.has(key)) {
      const p = load(readBundleDir(join(root, v.bundle)));
      for (const k of v.keys) p.setKeys(k.issuer, readFileSync(join(root, k.jwks), 'utf8'));
      cache.set(key, p);
    }
    return cache.get(key);
  };
}

/** The public API: a worker thread per policy, calls with a time budget. */
async function workerMode() {
  const engine = await Engine.load();
  const policyFor = policies((files) => engine.loadBundle(files));
  return (v) => {
    const p = policyFor(v);
    const { http, access, vouched } = v.request;
    if (http) return () => p.evaluateHttp(http, v.now);
    if (vouched) return () => p.evaluateAs(vouched.subject, vouched.access, v.now);
    return () => p.evaluate(access, v.now);
  };
}

/** The same jco output called in this thread (what a host without a budget would do). */
async function inlineMode() {
  const { sha256 } = JSON.parse(readFileSync(join(GEN_DIR, 'default.json'), 'utf8'));
  const dir = join(GEN_DIR, sha256);
  const modules = {};
  for (const n of readdirSync(dir).filter((n) => n.endsWith('.wasm'))) {
    modules[n] = new WebAssembly.Module(capMemory(readFileSync(join(dir, n)), 64 << 20));
  }
  const { instantiate } = await import(pathToFileURL(join(dir, 'component.js')).href);
  const root = await instantiate((n) => modules[n], emptyWasi({ 'greenlight:approval/crypto': cryptoImports(true) }).imports, (m, i) => new WebAssembly.Instance(m, i));
  const policyFor = policies((files) => root.engine.Policy.load(files));
  return (v) => {
    const p = policyFor(v);
    const now = BigInt(v.now);
    const { http, access, vouched } = v.request;
    const call = http ? { http } : access ? { access } : { vouched };
    return () => readDecision(p.decideJson(JSON.stringify(call), now));
  };
}

/** Rounds over every vector before any is measured. */
const WARMUP_ROUNDS = 20;

/** Microseconds per call of `f`: warm-up, then `iterations` timed calls. */
function measure(f) {
  for (let i = 0; i < 50; i++) f();
  const samples = new Float64Array(iterations);
  for (let i = 0; i < iterations; i++) {
    const t = process.hrtime.bigint();
    f();
    samples[i] = Number(process.hrtime.bigint() - t) / 1000;
  }
  return samples;
}

const mean = (s) => s.reduce((a, b) => a + b, 0) / s.length;
const median = (s) => {
  const sorted = Float64Array.from(s).sort();
  const m = sorted.length >> 1;
  return sorted.length % 2 ? sorted[m] : (sorted[m - 1] + sorted[m]) / 2;
};
const us = (x) => `${x.toFixed(1)} µs`.padStart(11);

console.log(`Node ${process.version}, ${iterations} warm decisions per vector, ${vectors.length} vectors\n`);
const results = {};
for (const [mode, make] of [['worker', workerMode], ['inline', inlineMode]]) {
  const prepare = await make();
  const all = [];
  results[mode] = {};
  const calls = vectors.map(([name, v]) => [name, prepare(v)]);
  // V8 compiles wasm lazily and tiers hot functions up after many calls:
  // every vector runs WARMUP_ROUNDS times first, so that none is measured
  // on baseline code (with 50 calls each, the first vectors were).
  for (let round = 0; round < WARMUP_ROUNDS; round++) for (const [, f] of calls) f();
  for (const [name, f] of calls) {
    const samples = measure(f);
    results[mode][name] = samples;
    all.push(...samples);
  }
  results[mode].all = all;
}

console.log(`${'case'.padEnd(28)}${'worker mean'.padStart(12)}${'median'.padStart(12)}${'inline mean'.padStart(13)}${'median'.padStart(12)}`);
const row = (label, name) => {
  const [w, i] = [results.worker[name], results.inline[name]];
  console.log(`${label.padEnd(28)}${us(mean(w))} ${us(median(w))}  ${us(mean(i))} ${us(median(i))}`);
};
for (const [label, prefix] of Object.entries(CASES)) row(label, vectors.find(([n]) => n.startsWith(prefix))[0]);
row(`all ${vectors.length} vectors`, 'all');
process.exit(0); // the worker threads are unref'd; this ends the run at once
