/** The data-processing example (handlers/wordcount) end to end: map in handleBatch, reduce in onJobComplete. */
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { JetbatchClient } from '../src/client/client.js';
import type { Daemon } from '../src/daemon/daemon.js';
import { sortedCounts, words, type BatchCounts, type Report } from '../handlers/wordcount/handler.js';
import { ROOT, startDaemon, tempDir } from './helpers/daemon.js';
import { NatsServer } from './helpers/nats-server.js';

/** Real text: the paragraphs of the README and the design notes, plus a few awkward ones. */
function documents(): Array<{ id: string; text: string }> {
  const docs: Array<{ id: string; text: string }> = [];
  const files = [join(ROOT, 'README.md'), ...['PROTOCOL.md', 'failure-semantics.md', 'projects.md'].map((f) => join(ROOT, 'docs', f))];
  for (const file of files) {
    if (!existsSync(file)) continue;
    readFileSync(file, 'utf8')
      .split(/\n\s*\n/)
      .forEach((text, i) => docs.push({ id: `${file.split('/').at(-1)}#${i}`, text }));
  }
  docs.push({ id: 'unicode', text: 'Ça va? ÇA VA! L’homme n’est pas là; don\'t panic — 42 ﬁles' });
  docs.push({ id: 'empty', text: '' });
  docs.push({ id: 'proto', text: 'hasOwnProperty constructor toString valueOf hasOwnProperty' });
  return docs;
}

describe('wordcount example', () => {
  let server: NatsServer;
  let daemon: Daemon;
  let client: JetbatchClient;
  const outDir = tempDir('jetbatch-wordcount-');

  before(async () => {
    server = await NatsServer.start();
    daemon = await startDaemon(server.url, [
      { name: 'wordcount', project: join(ROOT, 'handlers', 'wordcount'), threads: 2, config: { output_dir: outDir, stopwords: ['the', 'a', 'and'] } },
    ]);
    client = await JetbatchClient.connect({ servers: [server.url] });
  });

  after(async () => {
    await client?.close();
    await daemon?.close();
    await server?.dispose();
  });

  test('tokenizer: case-folded, NFKC, inner apostrophes kept, stopwords and min length', () => {
    assert.deepEqual(words('Ça va? ÇA VA! L’homme don\'t ﬁle'), ['ça', 'va', 'ça', 'va', "l'homme", "don't", 'file']);
    assert.deepEqual(words('the cat and a hat', new Set(['the', 'a', 'and'])), ['cat', 'hat']);
    assert.deepEqual(words('I am an ox', new Set(), 2), ['am', 'an', 'ox']);
    assert.deepEqual(sortedCounts(new Map([['b', 2], ['a', 2], ['c', 5]])), [['c', 5], ['a', 2], ['b', 2]]);
  });

  test('map results and the reduced report equal a direct count of the same documents', async () => {
    const docs = documents();
    assert.ok(docs.length > 30, 'enough real paragraphs');
    const stop = new Set(['the', 'a', 'and']);
    const expected = new Map<string, number>();
    for (const d of docs) for (const w of words(d.text, stop)) expected.set(w, (expected.get(w) ?? 0) + 1);

    const record = await client.submit({ api_name: 'wordcount', items: docs, batch_size: 7, workers: 4, config: { top: 15 } });
    const final = await client.wait(record.job_id, { intervalMs: 100, timeoutMs: 60_000 });
    assert.equal(final.status, 'succeeded');

    const merged = new Map<string, number>();
    const perDoc = new Map<string | number, number>();
    let batches = 0;
    for await (const r of client.results(record.job_id, { order: 'batch' })) {
      assert.equal(r.batch_id, String(batches), 'results in batch order');
      batches++;
      const b = r.result as BatchCounts;
      for (const d of b.documents) perDoc.set(d.id, d.words);
      for (const [w, n] of b.counts) merged.set(w, (merged.get(w) ?? 0) + n);
    }
    assert.equal(batches, Math.ceil(docs.length / 7));
    assert.deepEqual(sortedCounts(merged), sortedCounts(expected));
    for (const d of docs) assert.equal(perDoc.get(d.id), words(d.text, stop).length, d.id);
    assert.equal(merged.get('hasownproperty'), 2, 'Object.prototype names are ordinary words');

    // onJobComplete ran (once, before the job turned succeeded) and wrote the reduced report.
    const report = JSON.parse(readFileSync(join(outDir, `${record.job_id}.json`), 'utf8')) as Report;
    assert.equal(report.documents, docs.length);
    assert.equal(report.words, [...expected.values()].reduce((a, b) => a + b, 0));
    assert.equal(report.distinct_words, expected.size);
    assert.equal(report.failed_batches, 0);
    assert.deepEqual(report.top, sortedCounts(expected).slice(0, 15));
  });

  test('a malformed document dead-letters its batch at once (PermanentError), the rest succeed', async () => {
    const items: unknown[] = [{ id: 1, text: 'fine words' }, { id: 2, text: 'more words' }, { id: 3, body: 'no text field' }, { id: 4, text: 'ok' }];
    const record = await client.submit({ api_name: 'wordcount', items, batch_size: 2, max_attempts: 5 });
    const final = await client.wait(record.job_id, { intervalMs: 100, timeoutMs: 60_000 });
    assert.equal(final.status, 'completed_with_failures');
    assert.deepEqual([final.batch_metrics.succeeded, final.batch_metrics.failed], [1, 1]);
    const [letter] = await client.deadLetters(record.job_id);
    assert.equal(letter?.batch_id, '1');
    assert.equal(letter?.attempts, 1, 'not retried');
    assert.match(letter?.error.message ?? '', /item 0: expected/, 'index within the batch');
    const report = JSON.parse(readFileSync(join(outDir, `${record.job_id}.json`), 'utf8')) as Report;
    assert.equal(report.failed_batches, 1);
    assert.deepEqual(report.top, [['words', 2], ['fine', 1], ['more', 1]]);
  });
});
