// Starting `greenlight serve` (GREENLIGHT_BIN) on a bundle for the
// provider of provider.mjs, and asking it for decisions, for the tests here.

import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, writeFileSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { once } from 'node:events';
import { RESOURCE } from './provider.mjs';

export const POLICY = '@id("read") permit (principal, action == Action::"doc.read", resource) when { principal.scopes.contains("docs:read") };\n';

/** greenlight.toml for the provider at `issuer`, keys found by discovery
 * (`jwks` absent) or in the bundle's `idp.jwks.json`; `keyFetch` adds
 * lines to `[key_fetch]`. */
export function config(issuer, copied, keyFetch = '') {
  return `[[issuers]]
issuer = "${issuer}"
audience = "${RESOURCE}"
algorithms = ["RS256", "ES256", "EdDSA"]
require_typ = "at+jwt"
${copied ? 'jwks = "idp.jwks.json"\n' : ''}
[key_fetch]
allow_http_loopback = true
${keyFetch}

[action_tokens]
issuer = "https://greenlight.example.com"
audience = "${RESOURCE}"

[[routes]]
method = "GET"
path = "/docs/{id}"
action = "doc.read"
resource = { type = "Doc", id = "{id}" }
`;
}

async function freePort() {
  const s = createServer();
  s.listen(0, '127.0.0.1');
  await once(s, 'listening');
  const { port } = s.address();
  s.close();
  await once(s, 'close');
  return port;
}

/** Starts `greenlight serve` on a bundle made of `files`; stopped by PID. */
export async function serve(files) {
  const bin = process.env.GREENLIGHT_BIN;
  if (!bin) throw new Error('set GREENLIGHT_BIN to the greenlight binary');
  const dir = mkdtempSync(join(tmpdir(), 'greenlight-idp-'));
  for (const [name, text] of Object.entries(files)) writeFileSync(join(dir, name), text);
  const port = await freePort();
  const child = spawn(bin, ['serve', '--bundle', dir, '--listen', `127.0.0.1:${port}`,
    '--store', `sqlite://${join(dir, 'greenlight.db')}`], { stdio: ['ignore', 'ignore', 'pipe'] });
  let log = '';
  child.stderr.on('data', (d) => { log += d; });
  const url = `http://127.0.0.1:${port}`;
  for (let i = 0; ; i += 1) {
    try {
      const r = await fetch(`${url}/healthz`);
      if (r.status === 200) break;
    } catch { /* not listening yet */ }
    if (i > 600 || child.exitCode !== null) throw new Error(`greenlight serve did not start:\n${log}`);
    await new Promise((r) => setTimeout(r, 50));
  }
  return {
    url,
    log: () => log,
    async healthz() {
      return (await fetch(`${url}/healthz`)).json();
    },
    /** The decision on `GET /docs/d1` with `token`. */
    async read(token) {
      const r = await fetch(`${url}/v1/check`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ method: 'GET', path: '/docs/d1', headers: { authorization: `Bearer ${token}` } }),
      });
      assert.equal(r.status, 200);
      return r.json();
    },
    async stop() {
      child.kill('SIGTERM');
      if (child.exitCode === null) await once(child, 'exit');
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

