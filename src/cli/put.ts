/**
 * `jetbatch put FILE... URL`: uploads local files, and directories recursively, to a prefix of any store
 * (`file://`, `obj://`, `s3://`). A file lands at `URL/<its name>`; a directory's files at `URL/<path inside the
 * directory>` (its contents, as `aws s3 cp --recursive` does). Two sources mapping to one object are refused
 * before anything is uploaded. Each object is written whole (docs/stores.md), one at a time, in byte order of its
 * key, so a re-run after a failure rewrites the same objects with the same bytes.
 */
import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import { basename, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { jetstream } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/transport-node';
import type { Command } from 'commander';
import { ErrorCodes, JetbatchError } from '../errors.js';
import { connectNats } from '../fleet/connect.js';
import { compareKeys } from '../stores/listing.js';
import { withSlash } from '../stores/url.js';
import { joinStoreUrl, parseStoreUrl, storeFor, type OpenStore } from '../stores/index.js';
import { natsOptionsOf, withConnectionOptions, type ConnectionFlags } from './common.js';

interface Upload {
  readonly source: string;
  readonly key: string;
}

export function registerPut(program: Command): void {
  withConnectionOptions(
    program
      .command('put')
      .description(
        'upload local files (directories recursively) to a store prefix: file:///dir/, obj://BUCKET/prefix/ or s3://bucket/prefix/ ' +
          '(a file goes to URL/<name>, a directory’s files to URL/<path inside it>; S3 settings from the AWS environment variables)',
      )
      .argument('<file...>', 'files or directories, then the destination URL')
      .usage('[options] <file...> <url>'),
  ).action(async (args: string[], flags: ConnectionFlags) => {
    if (args.length < 2) throw new JetbatchError(ErrorCodes.INVALID_SUBMISSION, 'put needs at least one file and a destination URL: jetbatch put FILE... URL');
    const url = args[args.length - 1]!;
    const dest = parseStoreUrl(url);
    const uploads = await plan(args.slice(0, -1));
    let nc: NatsConnection | undefined;
    let store: OpenStore | undefined;
    try {
      if (dest.scheme === 'obj') nc = await connectNats(natsOptionsOf(flags), { reconnectForever: false });
      store = await storeFor(url, nc === undefined ? {} : { js: jetstream(nc) });
      let bytes = 0;
      for (const u of uploads) {
        const target = joinStoreUrl(dest, u.key);
        const size = (await stat(u.source)).size;
        await store.write(target, createReadStream(u.source));
        bytes += size;
        process.stdout.write(`${target}\t${size}\n`);
      }
      process.stdout.write(`uploaded ${uploads.length} ${uploads.length === 1 ? 'object' : 'objects'}, ${bytes} bytes\n`);
    } finally {
      await store?.close();
      await nc?.close();
    }
  });
}

/** Every file to upload with its key under the destination, in byte order of the keys; refuses collisions. */
async function plan(sources: readonly string[]): Promise<Upload[]> {
  const { FileStore } = await import('../stores/file-store.js');
  const files = new FileStore();
  const byKey = new Map<string, string>();
  for (const source of sources) {
    const path = resolve(source);
    const st = await stat(path).catch((err: unknown) => {
      throw new JetbatchError(ErrorCodes.INVALID_SUBMISSION, `cannot read ${source}: ${(err as Error).message}`, { cause: err });
    });
    const found: Upload[] = [];
    if (st.isDirectory()) {
      const root = withSlash(pathToFileURL(path).href);
      const rootPath = fileURLToPath(root);
      for await (const o of files.list(root)) found.push({ source: fileURLToPath(o.url), key: fileURLToPath(o.url).slice(rootPath.length) });
    } else if (st.isFile()) {
      found.push({ source: path, key: basename(path) });
    } else {
      throw new JetbatchError(ErrorCodes.INVALID_SUBMISSION, `${source} is neither a file nor a directory`);
    }
    for (const u of found) {
      const other = byKey.get(u.key);
      if (other !== undefined && other !== u.source) {
        throw new JetbatchError(ErrorCodes.INVALID_SUBMISSION, `two files would be uploaded as "${u.key}": ${other} and ${u.source}`);
      }
      byKey.set(u.key, u.source);
    }
  }
  return [...byKey].map(([key, source]) => ({ key, source })).sort((a, b) => compareKeys(a.key, b.key));
}
