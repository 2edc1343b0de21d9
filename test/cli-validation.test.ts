/**
 * `jetbatch submit` with bad input: the submission schema is the one check, it runs before connecting (so no
 * server is needed), and every problem is exit 2 with JB_INVALID_SUBMISSION naming the key path or the flag.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { ROOT, tempDir } from './helpers/daemon.js';

/** Nothing listens on port 1: reaching the server would be exit 3 (JB_CONNECTION_FAILED). */
const UNREACHABLE = 'nats://127.0.0.1:1';

interface CliResult {
  code: number;
  stderr: string;
}

function submit(args: string[], stdin = ''): Promise<CliResult> {
  return new Promise((resolve) => {
    const child = execFile(
      process.execPath,
      ['--import', 'tsx', join(ROOT, 'src', 'cli', 'main.ts'), 'submit', ...args, '--server', UNREACHABLE],
      { cwd: ROOT, timeout: 60_000 },
      (err, _stdout, stderr) => resolve({ code: err === null ? 0 : typeof err.code === 'number' ? err.code : -1, stderr }),
    );
    child.stdin?.end(stdin);
  });
}

describe('jetbatch submit: bad input is exit 2 before connecting', () => {
  const dir = tempDir('jetbatch-cli-validation-');
  const items = join(dir, 'items.json');
  const batches = join(dir, 'batches.json');
  writeFileSync(items, '[1, 2, 3]');
  writeFileSync(batches, '[[1], [2]]');
  after(() => rmSync(dir, { recursive: true, force: true }));

  const cases: Array<[string, string[], RegExp]> = [
    ['neither --items nor --batches', ['echo'], /give exactly one of items \(with batch_size\) or batches/],
    ['both --items and --batches', ['echo', '--items', items, '--batches', batches], /give exactly one of items/],
    // With --batch-size too, it must not also claim that batch_size is missing.
    ['both --items and --batches, with --batch-size', ['echo', '--items', items, '--batches', batches, '--batch-size', '2'], /^(?![\s\S]*is required with items)[\s\S]*give exactly one of items/],
    ['--items without --batch-size', ['echo', '--items', items], /batch_size: is required with items/],
    ['--batch-size 0', ['echo', '--items', items, '--batch-size', '0'], /batch_size: /],
    ['--batch-size 1.5', ['echo', '--items', items, '--batch-size', '1.5'], /batch_size: .*int/],
    ['--workers 2.5', ['echo', '--items', items, '--batch-size', '2', '--workers', '2.5'], /workers: .*int/],
    ['--max-attempts 0', ['echo', '--items', items, '--batch-size', '2', '--max-attempts', '0'], /max_attempts: /],
    ['--timeout -1', ['echo', '--items', items, '--batch-size', '2', '--timeout', '-1'], /timeout: /],
    ['--timeout that is not a duration', ['echo', '--items', items, '--batch-size', '2', '--timeout', '30x'], /--timeout must be a duration .*got "30x"/],
    ['--batch-timeout that is not a duration', ['echo', '--items', items, '--batch-size', '2', '--batch-timeout', '5 parsecs'], /--batch-timeout must be a duration/],
    ['--batch-timeout 0s', ['echo', '--items', items, '--batch-size', '2', '--batch-timeout', '0s'], /batch_timeout: /],
    ['--config that is an array', ['echo', '--items', items, '--batch-size', '2', '--config', '[1]'], /config: /],
    ['--config that is not JSON', ['echo', '--items', items, '--batch-size', '2', '--config', 'nope'], /--config is not valid JSON/],
    ['--workers that is not a number', ['echo', '--items', items, '--batch-size', '2', '--workers', 'abc'], /--workers must be a number, got "abc"/],
    ['--priority 1.5', ['echo', '--items', items, '--batch-size', '2', '--priority', '1.5'], /priority: .*int/],
    ['--priority 5000', ['echo', '--items', items, '--batch-size', '2', '--priority', '5000'], /priority: .*1000/],
    ['--priority -1001', ['echo', '--items', items, '--batch-size', '2', '--priority', '-1001'], /priority: .*-1000/],
    ['--priority that is not a number', ['echo', '--items', items, '--batch-size', '2', '--priority', 'high'], /--priority must be a number, got "high"/],
    ['--job-id with a dot', ['echo', '--items', items, '--batch-size', '2', '--job-id', 'a.b'], /job_id: /],
    ['an API name with a dot', ['Bad.Name', '--items', items, '--batch-size', '2'], /api_name: /],
    ['--batches holding items, not batches', ['echo', '--batches', items], /holds no valid batches: 3 malformed lines \(line 1: batch 0: must be a non-empty array of items\)/],
    ['an unreadable --items file', ['echo', '--items', join(dir, 'missing.json'), '--batch-size', '2'], /cannot read /],
  ];
  for (const [label, args, message] of cases) {
    test(label, async () => {
      const r = await submit(args);
      assert.equal(r.code, 2, r.stderr);
      assert.match(r.stderr, /JB_INVALID_SUBMISSION/);
      assert.match(r.stderr, message);
    });
  }

  test('--items - --batches - reads stdin once and reports the submission, not an empty stdin', async () => {
    const r = await submit(['echo', '--items', '-', '--batches', '-'], '[[1], [2]]');
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, /give exactly one of items/);
  });

  test('valid input gets as far as connecting (exit 3), with --batch-size beside --batches ignored as before, a negative --priority, and durations', async () => {
    const valid = [
      ['echo', '--items', items, '--batch-size', '2'],
      ['echo', '--batches', batches, '--batch-size', '2'],
      ['echo', '--batches', batches, '--priority', '-1000'],
      ['echo', '--batches', batches, '--priority', '1000'],
      ['echo', '--batches', batches, '--timeout', '30s', '--batch-timeout', '500ms'],
      ['echo', '--batches', batches, '--timeout', '1.5h', '--batch-timeout', '90'],
    ];
    for (const args of valid) {
      const r = await submit(args);
      assert.equal(r.code, 3, r.stderr);
      assert.match(r.stderr, /JB_CONNECTION_FAILED/);
    }
  });
});
