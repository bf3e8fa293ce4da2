// A command-line face of the real OpenID provider (provider.mjs), for tests
// written in other languages (tests/python/test_provider_keys.py). It starts
// the provider on a loopback port, prints one JSON line `{"issuer": ...}`,
// then reads commands from stdin, one per line, and answers each with one
// JSON line:
//
//   token <client>  -> {"token": "<access token>"}
//   rotate          -> {}            (new keys, signed with from now on)
//   retire          -> {}            (the replaced keys are no longer published)
//   counts          -> {"jwks": n, "discovery": m}  (fetches by others)
//   jwks            -> the public JWKS as published now
//
// A command that fails answers {"error": "<message>"}. It stops the provider
// and exits when stdin ends.
//
//   node tests/idp/cli.mjs

import { createInterface } from 'node:readline';
import { start } from './provider.mjs';

// stdout is the answers' only: the provider's notices go to stderr.
for (const level of ['log', 'info', 'warn', 'debug']) console[level] = console.error;

const idp = await start();
const out = (v) => process.stdout.write(`${JSON.stringify(v)}\n`);
out({ issuer: idp.issuer });

const commands = {
  token: async (client) => ({ token: await idp.token(client) }),
  rotate: async () => { await idp.rotate(); return {}; },
  retire: async () => { idp.retire(); return {}; },
  counts: async () => ({ jwks: idp.counts.jwks, discovery: idp.counts.discovery }),
  jwks: async () => idp.publicJwks(),
};

// One command at a time, answered in order.
const lines = createInterface({ input: process.stdin, crlfDelay: Infinity });
for await (const line of lines) {
  const [name, ...args] = line.trim().split(/\s+/);
  if (!name) continue;
  const run = commands[name];
  try {
    if (!run) throw new Error(`unknown command \`${name}\``);
    out(await run(...args));
  } catch (e) {
    out({ error: String(e?.message ?? e) });
  }
}
await idp.close();
process.exit(0);
