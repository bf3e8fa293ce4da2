// Entity data in the Node host: a bundle's `entities.json` says who a
// vouched subject is, and a host adds entities for one request (a resource
// it has just looked up) beside it; neither the host nor the request may
// restate what the token or the data says. The bundle is the AuthZEN
// interop Todo bundle (tests/authzen-interop/todo).

import assert from 'node:assert/strict';
import { copyFileSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { BundleError, Engine } from '../../bindings/js/src/index.js';

const root = resolve(import.meta.dirname, '..', '..');
const TODO = join(root, 'tests/authzen-interop/todo');
const NOW = 1767225600;
const MORTY = 'CiRmZDE2MTRkMy1jMzlhLTQ3ODEtYjdiZC04Yjk2ZjVhNTEwMGQSBWxvY2Fs';
const BETH = 'CiRmZDM2MTRkMy1jMzlhLTQ3ODEtYjdiZC04Yjk2ZjVhNTEwMGQSBWxvY2Fs';

const user = (pid) => ({ entity_type: 'user', subject: pid, client_id: 'todo-backend', issuer: 'https://idp.example.com' });
const update = (todo, owner, entities) => ({
  token: '',
  action: 'can_update_todo',
  resource_type: 'todo',
  resource_id: todo,
  resource_properties: owner === undefined ? null : { ownerID: owner },
  entities,
});

const engine = await Engine.load();

describe('entity data on the interop Todo bundle', () => {
  let policy;
  before(() => {
    policy = engine.loadBundleDir(TODO);
  });
  after(() => policy.close());

  test('the data says who the subject is', () => {
    const d = policy.evaluateAs(user(MORTY), update('t-1', 'morty@the-citadel.com'), NOW);
    assert.deepEqual([d.verdict.kind, d.reasons], ['allow', ['update-own-todo']]);
    const b = policy.evaluateAs(user(BETH), update('t-1', 'beth@the-smiths.com'), NOW);
    assert.deepEqual(b.verdict, {
      kind: 'deny',
      code: 'policy-no-permit',
      message: 'no policy permits `can_update_todo` on `todo::t-1`',
    });
  });

  test('a host gives the resource it has looked up, as a list or as JSON text', () => {
    const lookedUp = [{ uid: { type: 'todo', id: 't-2' }, attrs: { ownerID: 'morty@the-citadel.com' } }];
    for (const entities of [lookedUp, JSON.stringify(lookedUp)]) {
      const d = policy.evaluateAs(user(MORTY), update('t-2', undefined, entities), NOW);
      assert.deepEqual([d.verdict.kind, d.reasons], ['allow', ['update-own-todo']]);
    }
    const d = policy.evaluateAs(user(MORTY), update('t-2', 'morty@the-citadel.com', lookedUp), NOW);
    assert.deepEqual(d.verdict, {
      kind: 'deny',
      code: 'request-invalid',
      message: 'attribute `ownerID` of the resource todo::"t-2" is given by both the request and entity data',
    });
  });

  test('a host may not restate the principal', () => {
    const promoted = [{ uid: { type: 'user', id: BETH }, parents: [{ type: 'Role', id: 'admin' }] }];
    const d = policy.evaluateAs(user(BETH), update('t-1', 'beth@the-smiths.com', promoted), NOW);
    assert.deepEqual(d.verdict, {
      kind: 'deny',
      code: 'request-invalid',
      message: `the host's entities may not give the principal (user::"${BETH}"): its facts come from its token`,
    });
  });

  test('data that breaks a rule is refused at load', () => {
    const dir = mkdtempSync(join(tmpdir(), 'greenlight-entities-'));
    for (const f of ['greenlight.toml', 'policy.cedar', 'idp.jwks.json']) copyFileSync(join(TODO, f), join(dir, f));
    writeFileSync(join(dir, 'entities.json'), '[{"uid": {"type": "Action", "id": "can_update_todo"}}]');
    assert.throws(() => engine.loadBundleDir(dir), (e) => {
      assert.ok(e instanceof BundleError, String(e));
      assert.deepEqual(e.problems, [{
        kind: 'invalid-entities',
        file: 'entities.json',
        line: 1,
        column: 35,
        message: 'Action::"can_update_todo" is or names an action: actions come from the policies and the schema, not from data',
      }]);
      return true;
    });
  });
});
