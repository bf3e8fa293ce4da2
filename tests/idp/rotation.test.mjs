// A key rotation at a real OpenID provider while requests keep coming:
// four clients call `greenlight serve` (keys found by discovery, kept 4 s)
// in a loop; the provider publishes new keys and signs with them, keeps
// the old ones published for 3 s, then removes them. No request whose key
// the provider published throughout fails, and once the removed keys'
// cache age has passed (4 s, plus 0.5 s for the fetch itself) no token
// they signed is accepted. The counts are printed as TAP diagnostics.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { start, CLIENTS } from './provider.mjs';
import { config, serve, POLICY } from './greenlight.mjs';

const MAX_AGE_MS = 4000;
const SLACK_MS = 500;

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

test('a rotation under load: nothing that should pass fails, nothing removed passes late', async (t) => {
  const idp = await start();
  const srv = await serve({
    'greenlight.toml': config(idp.issuer, false, 'min_age_seconds = 4\nmax_age_seconds = 4\nunknown_kid_interval_seconds = 1'),
    'policy.cedar': POLICY,
  });
  try {
    const mint = async () => Promise.all(Object.keys(CLIENTS).map((c) => idp.token(c)));
    // Which generation's keys the provider publishes now, and since when
    // the old ones are gone.
    const published = new Set([1]);
    let retiredAt = null;
    const tokens = { 1: await mint(), 2: [] };
    const counts = {
      requests: 0, allowed: 0, shouldHavePassed: 0, removedAcceptedLate: 0,
      removedAcceptedWithinAge: 0, removedDenied: 0,
    };
    const failures = [];
    let running = true;
    const worker = async (w) => {
      for (let i = 0; running; i += 1) {
        // Every generation with tokens, the removed one included.
        const gens = [1, 2].filter((g) => tokens[g].length > 0);
        const gen = gens[(i + w) % gens.length];
        const token = tokens[gen][(i + w) % tokens[gen].length];
        const publishedBefore = published.has(gen);
        const sent = Date.now();
        const d = await srv.read(token);
        const allowed = d.verdict.kind === 'allow';
        counts.requests += 1;
        if (allowed) counts.allowed += 1;
        if (publishedBefore && published.has(gen) && !allowed) {
          counts.shouldHavePassed += 1;
          failures.push(d.verdict);
        }
        if (!published.has(gen) && retiredAt !== null && sent > retiredAt) {
          if (!allowed) counts.removedDenied += 1;
          else if (sent > retiredAt + MAX_AGE_MS + SLACK_MS) counts.removedAcceptedLate += 1;
          else counts.removedAcceptedWithinAge += 1;
        }
      }
    };
    const workers = [0, 1, 2, 3].map(worker);

    await sleep(1000);
    await idp.rotate(); // new keys published and signing; the old ones stay
    published.add(2);
    tokens[2] = await mint();
    await sleep(3000);
    idp.retire(); // the old keys are no longer published
    published.delete(1);
    retiredAt = Date.now();
    await sleep(MAX_AGE_MS + SLACK_MS + 2000);
    running = false;
    await Promise.all(workers);

    t.diagnostic(`rotation counts: ${JSON.stringify(counts)}, JWKS fetches: ${idp.counts.jwks}`);
    assert.deepEqual(failures, [], 'requests that should have passed');
    assert.equal(counts.shouldHavePassed, 0);
    assert.equal(counts.removedAcceptedLate, 0);
    assert.ok(counts.removedDenied > 0, 'the removed keys were refused in the end');
    assert.ok(counts.requests > 100, `a real load: ${counts.requests} requests`);
    const h = await srv.healthz();
    assert.deepEqual(h.keys[0].kids, ['rs256-2', 'es256-2', 'eddsa-2']);
  } finally {
    await srv.stop();
    await idp.close();
  }
});
