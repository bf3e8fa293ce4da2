// Live policy in the Node host: a bundle's own tests run in the component
// (`policy.runTests`, the WIT `run-tests`), and a LivePolicy's `reload`
// swaps a bundle whole, refusing one whose tests fail or that does not
// load, while the old one keeps deciding; the middleware takes up the new
// version at the next request.

import assert from 'node:assert/strict';
import { cpSync, existsSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { after, test } from 'node:test';
import { DenialError, Engine, LivePolicy, readTestsDir, withGreenlight } from '../../bindings/js/src/index.js';
import { GEN_DIR } from '../../bindings/js/src/engine.js';

const root = resolve(import.meta.dirname, '..', '..');
const DEMO = join(root, 'examples/bundle');
const NOW = 1767225600;

const engine = await Engine.load();
after(() => engine.close());

test('the demo bundle\'s tests pass in the component', () => {
  const policy = engine.loadBundleDir(DEMO);
  try {
    const outcomes = policy.runTests(readTestsDir(DEMO), NOW);
    assert.equal(outcomes.length, 10);
    assert.ok(outcomes.every((o) => o.failure === null));
    assert.deepEqual(outcomes[0], { name: 'demo.toml: a refund of 50 goes through on the client\'s scope', failure: null });
  } finally {
    policy.close();
  }
});

test('a failing test names the decision and its policies; a bad file is refused saying which', () => {
  const policy = engine.loadBundleDir(DEMO);
  try {
    const t = 'now = 1767225600\n[[tests]]\nname = "r"\nclaims = { sub = "alice", scope = "payments:refund" }\n' +
      'http = { method = "POST", path = "/payments/p/refund", params = { amount = 500, currency = "EUR" } }\n' +
      'expect = { verdict = "allow" }\n';
    assert.deepEqual(policy.runTests([['t.toml', t]], 0), [{
      name: 't.toml: r',
      failure: 'expected allow; got approval-required: approvers group:finance, quorum 2, grant once, ttl 900 (determined by refund-large)',
    }]);
    assert.throws(() => policy.runTests([['t.toml', '[[tests]]\nname = "x"\nexpect = { verdict = "allow" }\n']], NOW),
      { name: 'Error', message: 'tests/t.toml: test `x` needs exactly one of `http` and `evaluation`' });
  } finally {
    policy.close();
  }
});

test('a hostile module\'s test answers are refused', async () => {
  const defaults = JSON.parse(readFileSync(join(GEN_DIR, 'default.json'), 'utf8'));
  const path = process.env.GREENLIGHT_HOSTILE_WASM ?? join(dirname(defaults.wasm), 'greenlight_test_hostile.wasm');
  assert.ok(existsSync(path), `the hostile component is not at ${path}`);
  const hostile = await Engine.load(path);
  const policy = hostile.loadBundle([]);
  try {
    assert.throws(() => policy.runTests([['t.toml', '']], NOW), (e) => {
      assert.ok(e instanceof DenialError);
      assert.deepEqual([e.code, e.denial], ['engine-invalid-output', 'the policy module answered the tests wrongly: 10001 test outcomes']);
      return true;
    });
  } finally {
    policy.close();
    hostile.close();
  }
});

const FREEZE = '\n@id("freeze")\nforbid (principal, action == Action::"payment.refund", resource)\nwhen { principal.scopes.contains("payments:refund") && context.amount == 50 };\n';

function vector(prefix) {
  const name = readdirSync(join(root, 'tests/vectors')).find((n) => n.startsWith(prefix));
  return JSON.parse(readFileSync(join(root, 'tests/vectors', name), 'utf8'));
}

test('reload swaps a bundle whose tests pass, refuses one whose tests fail, and the middleware follows', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'greenlight-live-'));
  cpSync(DEMO, dir, { recursive: true });
  const live = LivePolicy.load(engine, dir, { now: () => NOW });
  const first = live.current.policyHash;
  assert.equal(live.current.componentHash, engine.componentHash);
  assert.match(engine.componentHash, /^[0-9a-f]{64}$/);
  const handler = withGreenlight({ policy: live, serviceUrl: 'http://127.0.0.1:9', now: () => NOW, log: () => {}, keysRefreshMs: 60_000 },
    (req, res) => res.end('upstream'));
  const server = createServer(handler);
  await new Promise((ok) => server.listen(0, '127.0.0.1', ok));
  const base = `http://127.0.0.1:${server.address().port}`;
  const v = vector('001-').request.http;
  const refund = async () => (await fetch(`${base}${v.path}`, {
    method: v.method, headers: [...v.headers, ['content-type', 'application/json']], body: v.params,
  })).status;
  try {
    assert.equal(await refund(), 200);
    assert.deepEqual(live.reload(), { outcome: 'unchanged', policy_hash: first, component_hash: engine.componentHash, detail: '' });

    writeFileSync(join(dir, 'policy.cedar'), readFileSync(join(DEMO, 'policy.cedar'), 'utf8') + FREEZE);
    let r = live.reload();
    assert.equal(r.outcome, 'refused');
    assert.equal(r.policy_hash, first);
    assert.ok(r.detail.startsWith('its tests failed: 9 passed, 1 failed: demo.toml: a refund of 50 goes through on the ' +
      'client\'s scope: expected allow, expected reasons [refund-small]; got deny policy-forbidden: '), r.detail);
    assert.equal(await refund(), 200);

    writeFileSync(join(dir, 'policy.cedar'), 'permit (');
    r = live.reload();
    assert.equal(r.outcome, 'refused');
    assert.ok(r.detail.startsWith('the bundle has 1 problem(s):\npolicy.cedar:1:9: '), r.detail);
    assert.equal(await refund(), 200);

    writeFileSync(join(dir, 'policy.cedar'), readFileSync(join(DEMO, 'policy.cedar'), 'utf8') + FREEZE);
    const tests = readFileSync(join(dir, 'tests/demo.toml'), 'utf8');
    writeFileSync(join(dir, 'tests/demo.toml'), tests.replace(
      'expect = { verdict = "allow", reasons = ["refund-small"] }',
      'expect = { verdict = "deny", code = "policy-forbidden", reasons = ["freeze"] }'));
    r = live.reload();
    assert.equal(r.outcome, 'swapped', r.detail);
    assert.notEqual(r.policy_hash, first);
    assert.equal(r.detail, 'tests: 10 passed, 0 failed');
    assert.equal(live.current.policyHash, r.policy_hash);
    assert.equal(await refund(), 403);
  } finally {
    server.close();
    handler.close();
    live.current.close();
  }
});
