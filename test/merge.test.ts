import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { deepMerge, isPlainObject } from '../src/util/merge.js';

function obj(json: string): Record<string, unknown> {
  const value: unknown = JSON.parse(json);
  assert.ok(isPlainObject(value), 'fixture must be a JSON object');
  return value;
}

function assertNotPolluted(): void {
  assert.equal(Object.prototype.hasOwnProperty.call(Object.prototype, 'polluted'), false);
  assert.equal(Reflect.get({}, 'polluted'), undefined);
  assert.equal(Object.prototype.hasOwnProperty.call(Object.prototype, 'hacked'), false);
}

/** Walks a merged value and fails on any own key that could reach a prototype. */
function assertNoForbiddenKeys(value: unknown, path = '$'): void {
  if (Array.isArray(value)) {
    value.forEach((v, i) => assertNoForbiddenKeys(v, `${path}[${i}]`));
    return;
  }
  if (value === null || typeof value !== 'object') return;
  for (const key of Object.getOwnPropertyNames(value)) {
    assert.ok(!['__proto__', 'constructor', 'prototype'].includes(key), `forbidden key ${path}.${key}`);
    assertNoForbiddenKeys(Reflect.get(value, key), `${path}.${key}`);
  }
  assert.equal(Object.getPrototypeOf(value), Object.prototype, `${path} has an unexpected prototype`);
}

describe('deepMerge', () => {
  test('the job (override) wins over the base for the same key', () => {
    const out = deepMerge({ model: 'small', size: 1, keep: 'base' }, { model: 'large', size: 2 });
    assert.deepEqual(out, { model: 'large', size: 2, keep: 'base' });
  });

  test('nested objects merge key by key at every depth', () => {
    const base = { db: { host: 'h', port: 1, opts: { ssl: true, timeout: 5 } }, a: 1 };
    const job = { db: { port: 2, opts: { timeout: 9, extra: 'x' } }, b: 2 };
    assert.deepEqual(deepMerge(base, job), {
      db: { host: 'h', port: 2, opts: { ssl: true, timeout: 9, extra: 'x' } },
      a: 1,
      b: 2,
    });
  });

  test('arrays replace rather than concatenate or merge by index', () => {
    assert.deepEqual(deepMerge({ tags: [1, 2, 3] }, { tags: [9] }), { tags: [9] });
    assert.deepEqual(deepMerge({ n: { list: ['a', 'b'] } }, { n: { list: [] } }), { n: { list: [] } });
  });

  test('an object and a non-object replace each other entirely', () => {
    assert.deepEqual(deepMerge({ a: { x: 1 } }, { a: 5 }), { a: 5 });
    assert.deepEqual(deepMerge({ a: 5 }, { a: { x: 1 } }), { a: { x: 1 } });
    assert.deepEqual(deepMerge({ a: { x: 1 } }, { a: null }), { a: null });
    assert.deepEqual(deepMerge({ a: { x: 1 } }, { a: [1] }), { a: [1] });
  });

  test('non-plain objects (Date, class instances) are kept as values, not merged', () => {
    const when = new Date(0);
    class Thing {
      constructor(readonly v: number) {}
    }
    const thing = new Thing(3);
    const out = deepMerge({ when: { x: 1 }, thing: { y: 1 } }, { when, thing });
    assert.equal(out['when'], when);
    assert.equal(out['thing'], thing);
  });

  test('inputs are not mutated and the result shares no plain objects or arrays with them', () => {
    const base = { a: { b: { c: 1 } }, list: [{ k: 1 }], only: { z: 1 } };
    const job = { a: { b: { d: 2 } }, list2: [{ k: 2 }] };
    const baseCopy = structuredClone(base);
    const jobCopy = structuredClone(job);
    const out = deepMerge(base, job);
    assert.deepEqual(base, baseCopy);
    assert.deepEqual(job, jobCopy);
    assert.deepEqual(out, { a: { b: { c: 1, d: 2 } }, list: [{ k: 1 }], only: { z: 1 }, list2: [{ k: 2 }] });
    assert.notEqual(out['a'], base.a);
    assert.notEqual(out['only'], base.only);
    assert.notEqual(out['list'], base.list);
    assert.notEqual(out['list2'], job.list2);
    // Changing the result leaves the inputs alone.
    const only = out['only'];
    assert.ok(isPlainObject(only));
    only['z'] = 99;
    assert.equal(base.only.z, 1);
  });

  test('empty inputs', () => {
    assert.deepEqual(deepMerge({}, {}), {});
    assert.deepEqual(deepMerge({ a: 1 }, {}), { a: 1 });
    assert.deepEqual(deepMerge({}, { a: 1 }), { a: 1 });
  });
});

describe('deepMerge: prototype keys', () => {
  test('__proto__ at the top level of the job is dropped', () => {
    const out = deepMerge({ a: 1 }, obj('{"__proto__": {"polluted": 1}, "b": 2}'));
    assert.deepEqual(out, { a: 1, b: 2 });
    assert.equal(Reflect.get(out, 'polluted'), undefined);
    assertNoForbiddenKeys(out);
    assertNotPolluted();
  });

  test('__proto__ in the base is dropped too', () => {
    const out = deepMerge(obj('{"__proto__": {"polluted": 1}, "a": 1}'), { b: 2 });
    assert.deepEqual(out, { a: 1, b: 2 });
    assertNoForbiddenKeys(out);
    assertNotPolluted();
  });

  test('constructor and prototype keys are dropped', () => {
    const out = deepMerge(
      { x: 1 },
      obj('{"constructor": {"prototype": {"polluted": 1}}, "prototype": {"polluted": 1}, "y": 2}'),
    );
    assert.deepEqual(out, { x: 1, y: 2 });
    assert.equal(out.constructor, Object);
    assertNoForbiddenKeys(out);
    assertNotPolluted();
  });

  test('forbidden keys are dropped at every depth, in merged and copied branches and inside arrays', () => {
    const base = obj('{"deep": {"keep": 1, "inner": {"v": 1}}}');
    const job = obj(
      '{"deep": {"__proto__": {"polluted": 1}, "inner": {"constructor": {"prototype": {"polluted": 1}}, "w": 2}},' +
        ' "fresh": {"a": {"b": {"__proto__": {"polluted": 1}, "prototype": 1, "c": 3}}},' +
        ' "list": [{"__proto__": {"polluted": 1}, "ok": 1}, [{"constructor": {"prototype": {"hacked": 1}}}]]}',
    );
    const out = deepMerge(base, job);
    assert.deepEqual(out, {
      deep: { keep: 1, inner: { v: 1, w: 2 } },
      fresh: { a: { b: { c: 3 } } },
      list: [{ ok: 1 }, [{}]],
    });
    assertNoForbiddenKeys(out);
    assertNotPolluted();
  });

  test('an attacker cannot pollute through a merge of a nested __proto__ into an existing object', () => {
    const out = deepMerge({ a: {} }, obj('{"a": {"__proto__": {"polluted": 1}}}'));
    assert.deepEqual(out, { a: {} });
    const a = out['a'];
    assert.ok(a !== null && typeof a === 'object');
    assert.equal(Reflect.get(a, 'polluted'), undefined);
    assertNotPolluted();
  });
});

describe('isPlainObject', () => {
  test('accepts object literals and null-prototype objects only', () => {
    assert.equal(isPlainObject({}), true);
    assert.equal(isPlainObject(Object.create(null)), true);
    assert.equal(isPlainObject([]), false);
    assert.equal(isPlainObject(null), false);
    assert.equal(isPlainObject(new Date()), false);
    assert.equal(isPlainObject(new Map()), false);
    assert.equal(isPlainObject('x'), false);
    assert.equal(isPlainObject(1), false);
  });
});
