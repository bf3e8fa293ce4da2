#!/usr/bin/env node
// The build step: `jco transpile` a component into gen/<sha256>/, where
// Engine.load finds it by the SHA-256 of the .wasm.
//
//   npm run build                        the workspace's greenlight.wasm, made the default:
//                                        $GREENLIGHT_WASM, else `cargo run -q -p greenlight -- component path`
//   node scripts/transpile.mjs X.wasm    another component (e.g. the hostile test module)
//
// The output is generated, never checked in (gen/ is ignored).

import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { GEN_DIR } from '../src/engine.js';

const here = resolve(import.meta.dirname, '..');
const workspace = resolve(here, '..', '..');

/** The workspace's component: $GREENLIGHT_WASM, else the path cargo reports. */
function workspaceWasm() {
  if (process.env.GREENLIGHT_WASM) return resolve(process.env.GREENLIGHT_WASM);
  const out = execFileSync('cargo', ['run', '-q', '-p', 'greenlight', '--', 'component', 'path'], {
    cwd: workspace,
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  return out.trim();
}

/**
 * Transpiles one component unless its copy exists; returns its SHA-256.
 * @param {string} wasm
 */
export function transpile(wasm) {
  const sha = createHash('sha256').update(readFileSync(wasm)).digest('hex');
  const out = join(GEN_DIR, sha);
  if (existsSync(join(out, 'component.js'))) return sha;
  const tmp = `${out}.tmp${process.pid}`;
  rmSync(tmp, { recursive: true, force: true });
  mkdirSync(GEN_DIR, { recursive: true });
  // --instantiation async: the host supplies the imports (an empty WASI
  // context, src/wasi.js) and can make fresh instances from the compiled
  // core modules; the generated code imports no WASI shim of its own.
  execFileSync(
    join(here, 'node_modules', '.bin', 'jco'),
    ['transpile', wasm, '--out-dir', tmp, '--name', 'component', '--instantiation', 'async', '--no-typescript', '--quiet'],
    { stdio: 'inherit' },
  );
  renameSync(tmp, out);
  return sha;
}

const args = process.argv.slice(2);
if (args.length === 0) {
  const wasm = workspaceWasm();
  const sha = transpile(wasm);
  writeFileSync(join(GEN_DIR, 'default.json'), `${JSON.stringify({ wasm, sha256: sha }, null, 2)}\n`);
  console.log(`transpiled ${wasm} -> gen/${sha} (default)`);
} else {
  for (const wasm of args) console.log(`transpiled ${wasm} -> gen/${transpile(resolve(wasm))}`);
}
