import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { ErrorCodes, JetbatchError } from '../src/errors.js';
import { decodeValue, encodeValue } from '../src/fleet/protocol.js';
import { newJobId, prepareSubmission, type PrepareLimits } from '../src/fleet/submission.js';
import { assertRejects } from './helpers/errors.js';
import { waitUntil } from './helpers/wait.js';

const LIMITS: PrepareLimits = { maxBatchBytes: 1_000_000, maxBatches: 10_000 };

function range(n: number): number[] {
  return Array.from({ length: n }, (_, i) => i);
}

function invalid(input: unknown, ...patterns: RegExp[]): JetbatchError {
  return assertRejects(() => prepareSubmission(input, LIMITS), ErrorCodes.INVALID_SUBMISSION, ...patterns);
}

describe('prepareSubmission: splitting and encoding', () => {
  test('25 items with batch_size 10 become batches of 10, 10 and 5, each MessagePack of the item array', () => {
    const items = range(25).map((i) => ({ n: i, s: `item-${i}` }));
    const job = prepareSubmission({ api_name: 'resize', items, batch_size: 10 }, LIMITS);
    assert.equal(job.batches.length, 3);
    const decoded = job.batches.map((b) => decodeValue(b));
    assert.deepEqual(decoded, [items.slice(0, 10), items.slice(10, 20), items.slice(20, 25)]);
    assert.deepEqual(
      decoded.map((d) => (Array.isArray(d) ? d.length : -1)),
      [10, 10, 5],
    );
  });

  test('an exact multiple gives full batches only, and batch_size above the item count gives one batch', () => {
    const even = prepareSubmission({ api_name: 'a', items: range(20), batch_size: 10 }, LIMITS);
    assert.deepEqual(even.batches.map((b) => decodeValue(b)), [range(10), range(20).slice(10)]);
    const one = prepareSubmission({ api_name: 'a', items: range(3), batch_size: 100 }, LIMITS);
    assert.deepEqual(one.batches.map((b) => decodeValue(b)), [range(3)]);
  });

  test('batch_size 1 gives one batch per item, in order', () => {
    const job = prepareSubmission({ api_name: 'a', items: ['x', 'y', 'z'], batch_size: 1 }, LIMITS);
    assert.deepEqual(job.batches.map((b) => decodeValue(b)), [['x'], ['y'], ['z']]);
  });

  test('ready-made batches are kept exactly as given (sizes and order)', () => {
    const batches = [[1, 2, 3], [{ k: 'v' }], ['a', 'b'], [null, true, 1.5]];
    const job = prepareSubmission({ api_name: 'a', batches }, LIMITS);
    assert.equal(job.batches.length, 4);
    assert.deepEqual(job.batches.map((b) => decodeValue(b)), batches);
    assert.deepEqual(job.batches[0], encodeValue([1, 2, 3]));
  });

  test('defaults are filled in and given settings are passed through', () => {
    const d = prepareSubmission({ api_name: 'a', batches: [[1]] }, LIMITS);
    assert.equal(d.api_name, 'a');
    assert.equal(d.workers, 1);
    assert.equal(d.priority, 0);
    assert.deepEqual(d.config, {});
    assert.equal(d.timeout, null);
    assert.equal(d.batch_timeout, null);
    assert.equal(d.max_attempts, null);
    assert.equal(d.backoff, null);
    const s = prepareSubmission(
      {
        api_name: 'a',
        job_id: 'job-1',
        batches: [[1]],
        workers: 4,
        priority: -7,
        config: { model: 'x' },
        timeout: 60,
        batch_timeout: 5,
        max_attempts: 2,
        backoff: { initial_ms: 10 },
      },
      LIMITS,
    );
    assert.equal(s.job_id, 'job-1');
    assert.equal(s.workers, 4);
    assert.equal(s.priority, -7);
    assert.deepEqual(s.config, { model: 'x' });
    assert.equal(s.timeout, 60);
    assert.equal(s.batch_timeout, 5);
    assert.equal(s.max_attempts, 2);
    assert.deepEqual(s.backoff, { initial_ms: 10 });
  });
});

describe('prepareSubmission: job_id', () => {
  test('a job_id is generated when absent and matches the job id pattern', () => {
    const job = prepareSubmission({ api_name: 'a', items: [1], batch_size: 1 }, LIMITS);
    assert.match(job.job_id, /^[A-Za-z0-9_-]{1,64}$/);
    const other = prepareSubmission({ api_name: 'a', items: [1], batch_size: 1 }, LIMITS);
    assert.notEqual(job.job_id, other.job_id);
  });

  test('generated job ids are time ordered', async () => {
    const before = Date.now();
    // Ids of later milliseconds sort later: each id is made once the clock has passed the millisecond of the last one.
    const nextMs = (id: string): Promise<true> =>
      waitUntil(`the clock to pass the millisecond of ${id}`, () => Date.now() > Number.parseInt(id.slice(0, 12), 16), { timeoutMs: 1000, intervalMs: 1 });
    const first = newJobId();
    await nextMs(first);
    const second = prepareSubmission({ api_name: 'a', items: [1], batch_size: 1 }, LIMITS).job_id;
    await nextMs(second);
    const third = newJobId();
    assert.ok(first < second, `${first} should sort before ${second}`);
    assert.ok(second < third, `${second} should sort before ${third}`);
    // The leading part encodes the creation time in milliseconds.
    const ms = Number.parseInt(first.slice(0, 12), 16);
    assert.ok(ms >= before && ms <= Date.now(), `timestamp ${ms} not within the test window`);
  });

  test('a given job_id is used as is', () => {
    const job = prepareSubmission({ api_name: 'a', job_id: 'My_Job-42', items: [1], batch_size: 1 }, LIMITS);
    assert.equal(job.job_id, 'My_Job-42');
  });
});

describe('prepareSubmission: spec_hash', () => {
  const base = { api_name: 'a', items: range(12), batch_size: 5, config: { x: 1, nested: { y: [1, 2] } } };

  test('is stable for identical input (and independent of the generated job id)', () => {
    const a = prepareSubmission(structuredClone(base), LIMITS);
    const b = prepareSubmission(structuredClone(base), LIMITS);
    assert.notEqual(a.job_id, b.job_id);
    assert.equal(a.spec_hash, b.spec_hash);
    assert.match(a.spec_hash, /^[0-9a-f]{32}$/);
  });

  test('differs when items, batching, config or settings differ', () => {
    const h = (input: Record<string, unknown>): string => prepareSubmission(input, LIMITS).spec_hash;
    const ref = h(structuredClone(base));
    const variants: Record<string, unknown>[] = [
      { ...base, items: [...range(12).slice(0, 11), 99] },
      { ...base, items: range(13) },
      { ...base, batch_size: 4 },
      { ...base, config: { x: 2, nested: { y: [1, 2] } } },
      { ...base, config: { x: 1, nested: { y: [1, 3] } } },
      { ...base, api_name: 'b' },
      { ...base, workers: 2 },
      { ...base, priority: 1 },
      { ...base, timeout: 10 },
      { ...base, max_attempts: 5 },
    ];
    const hashes = variants.map(h);
    for (const [i, hash] of hashes.entries()) assert.notEqual(hash, ref, `variant ${i} has the reference hash`);
    assert.equal(new Set(hashes).size, hashes.length, 'variants should all hash differently');
  });
});

describe('prepareSubmission: rejections (JB_INVALID_SUBMISSION naming the field)', () => {
  test('batch_size 0, negative, non-integer', () => {
    invalid({ api_name: 'a', items: [1], batch_size: 0 }, /batch_size/);
    invalid({ api_name: 'a', items: [1], batch_size: -3 }, /batch_size/);
    invalid({ api_name: 'a', items: [1], batch_size: 2.5 }, /batch_size/);
    invalid({ api_name: 'a', items: [1], batch_size: '10' }, /batch_size/);
  });

  test('batch_size missing with items', () => {
    invalid({ api_name: 'a', items: [1, 2] }, /batch_size/, /required/);
  });

  test('batch_size given with batches', () => {
    invalid({ api_name: 'a', batches: [[1]], batch_size: 1 }, /batch_size/);
  });

  test('items not an array: string, object, null', () => {
    invalid({ api_name: 'a', items: 'abc', batch_size: 1 }, /items/);
    invalid({ api_name: 'a', items: { 0: 'x' }, batch_size: 1 }, /items/);
    invalid({ api_name: 'a', items: null, batch_size: 1 }, /items/);
  });

  test('empty items', () => {
    invalid({ api_name: 'a', items: [], batch_size: 1 }, /items/);
  });

  test('both items and batches', () => {
    invalid({ api_name: 'a', items: [1], batches: [[1]] }, /items/, /batches/);
  });

  test('neither items nor batches', () => {
    invalid({ api_name: 'a' }, /items/, /batches/);
  });

  test('batches containing a non-array, an empty batch, or no batches at all', () => {
    const err = invalid({ api_name: 'a', batches: [[1], 2] }, /batches\.1/);
    assert.ok(err.details.some((d) => d.startsWith('batches.1')), err.details.join('; '));
    invalid({ api_name: 'a', batches: [[1], 'x'] }, /batches\.1/);
    invalid({ api_name: 'a', batches: [[1], []] }, /batches\.1/);
    invalid({ api_name: 'a', batches: [] }, /batches/);
    invalid({ api_name: 'a', batches: 'x' }, /batches/);
  });

  test('wrong types: workers "3", config [] or "x", timeout -1, max_attempts 0', () => {
    invalid({ api_name: 'a', batches: [[1]], workers: '3' }, /workers/);
    invalid({ api_name: 'a', batches: [[1]], workers: 0 }, /workers/);
    invalid({ api_name: 'a', batches: [[1]], config: [] }, /config/);
    invalid({ api_name: 'a', batches: [[1]], config: 'x' }, /config/);
    invalid({ api_name: 'a', batches: [[1]], timeout: -1 }, /timeout/);
    invalid({ api_name: 'a', batches: [[1]], batch_timeout: 0 }, /batch_timeout/);
    invalid({ api_name: 'a', batches: [[1]], max_attempts: 0 }, /max_attempts/);
    invalid({ api_name: 'a', batches: [[1]], backoff: { jitter: 2 } }, /backoff\.jitter/);
  });

  test('priority: not an integer, outside -1000..1000, or a string', () => {
    invalid({ api_name: 'a', batches: [[1]], priority: 1.5 }, /priority/);
    invalid({ api_name: 'a', batches: [[1]], priority: 1001 }, /priority/);
    invalid({ api_name: 'a', batches: [[1]], priority: -1001 }, /priority/);
    invalid({ api_name: 'a', batches: [[1]], priority: '5' }, /priority/);
    invalid({ api_name: 'a', batches: [[1]], priority: null }, /priority/);
    for (const priority of [-1000, 0, 1000]) assert.equal(prepareSubmission({ api_name: 'a', batches: [[1]], priority }, LIMITS).priority, priority);
  });

  test('unknown top-level key is named', () => {
    invalid({ api_name: 'a', batches: [[1]], batchsize: 10 }, /batchsize/);
  });

  test('not an object at all', () => {
    invalid(null);
    invalid('submit');
    invalid([{ api_name: 'a', batches: [[1]] }]);
  });

  test('api_name missing, with dots, wildcards, whitespace, uppercase, too long', () => {
    invalid({ batches: [[1]] }, /api_name/);
    for (const name of ['a.b', 'a*', '*', 'a>', '>', 'a b', ' a', 'a\t', 'Upper', '', 'x'.repeat(64)]) {
      invalid({ api_name: name, batches: [[1]] }, /api_name/);
    }
    // 63 characters is the longest accepted name.
    assert.equal(prepareSubmission({ api_name: 'x'.repeat(63), batches: [[1]] }, LIMITS).api_name, 'x'.repeat(63));
  });

  test('job_id with dots, wildcards, whitespace, empty, too long', () => {
    for (const id of ['a.b', 'a*', 'a>', '>', 'a b', 'a\n', '', 'x'.repeat(65)]) {
      invalid({ api_name: 'a', job_id: id, batches: [[1]] }, /job_id/);
    }
    assert.equal(prepareSubmission({ api_name: 'a', job_id: 'x'.repeat(64), batches: [[1]] }, LIMITS).job_id, 'x'.repeat(64));
  });

  test('every problem is listed in details', () => {
    const err = invalid({ api_name: 'A.B', items: [1], batch_size: 0, workers: '3' });
    const fields = err.details.map((d) => d.split(':')[0]);
    assert.deepEqual([...fields].sort(), ['api_name', 'batch_size', 'workers']);
  });

  test('items that MessagePack cannot encode name the batch', () => {
    invalid({ api_name: 'a', items: [1, 2, () => 3], batch_size: 2 }, /batch 1/);
  });
});

describe('prepareSubmission: size limits (JB_PAYLOAD_TOO_LARGE)', () => {
  test('a batch whose encoded size exceeds maxBatchBytes is rejected, naming the batch index', () => {
    const big = 'x'.repeat(200);
    const input = { api_name: 'a', batches: [['small'], ['small'], [big]] };
    const limit = encodeValue([big]).byteLength - 1;
    const err = assertRejects(
      () => prepareSubmission(input, { maxBatchBytes: limit, maxBatches: 10 }),
      ErrorCodes.PAYLOAD_TOO_LARGE,
      /batch 2\b/,
    );
    assert.match(err.message, new RegExp(`${limit}`));
  });

  test('a batch of exactly maxBatchBytes is accepted', () => {
    const batch = ['x'.repeat(200)];
    const size = encodeValue(batch).byteLength;
    const job = prepareSubmission({ api_name: 'a', batches: [batch] }, { maxBatchBytes: size, maxBatches: 1 });
    assert.equal(job.batches[0]?.byteLength, size);
  });

  test('split items are size-checked per batch too', () => {
    const items = ['a', 'b', 'c', 'x'.repeat(500)];
    assertRejects(
      () => prepareSubmission({ api_name: 'a', items, batch_size: 3 }, { maxBatchBytes: 100, maxBatches: 10 }),
      ErrorCodes.PAYLOAD_TOO_LARGE,
      /batch 1\b/,
    );
  });

  test('too many batches', () => {
    const input = { api_name: 'a', items: range(25), batch_size: 10 };
    assertRejects(() => prepareSubmission(input, { maxBatchBytes: 1_000_000, maxBatches: 2 }), ErrorCodes.PAYLOAD_TOO_LARGE, /3 batches/);
    assert.equal(prepareSubmission(input, { maxBatchBytes: 1_000_000, maxBatches: 3 }).batches.length, 3);
    assertRejects(
      () => prepareSubmission({ api_name: 'a', batches: [[1], [2]] }, { maxBatchBytes: 1_000_000, maxBatches: 1 }),
      ErrorCodes.PAYLOAD_TOO_LARGE,
    );
  });
});

describe('prepareSubmission: prototype pollution', () => {
  test('a config with __proto__ keys (parsed from JSON) does not pollute Object.prototype', () => {
    const config: unknown = JSON.parse('{"__proto__": {"polluted": 1}, "nested": {"__proto__": {"polluted": 2}}, "ok": true}');
    const job = prepareSubmission({ api_name: 'a', batches: [[1]], config }, LIMITS);
    assert.equal(Object.prototype.hasOwnProperty.call(Object.prototype, 'polluted'), false);
    assert.equal(Reflect.get({}, 'polluted'), undefined);
    // The config object itself keeps an ordinary prototype and gains no inherited `polluted`.
    assert.equal(Object.getPrototypeOf(job.config), Object.prototype);
    assert.equal(Reflect.get(job.config, 'polluted'), undefined);
    assert.equal(job.config['ok'], true);
    const nested = job.config['nested'];
    assert.ok(nested !== null && typeof nested === 'object');
    assert.equal(Object.getPrototypeOf(nested), Object.prototype);
    assert.equal(Reflect.get(nested, 'polluted'), undefined);
  });

  test('a whole submission parsed from JSON with __proto__ does not pollute', () => {
    const input: unknown = JSON.parse('{"api_name": "a", "batches": [[{"__proto__": {"polluted": 3}}]], "__proto__": {"polluted": 4}}');
    try {
      prepareSubmission(input, LIMITS);
    } catch (err) {
      // Rejecting the stray key is fine; polluting is not.
      assert.ok(err instanceof JetbatchError);
    }
    assert.equal(Object.prototype.hasOwnProperty.call(Object.prototype, 'polluted'), false);
    assert.equal(Reflect.get({}, 'polluted'), undefined);
  });
});
