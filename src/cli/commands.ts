/** The client-side commands: submit, status, jobs, results, pause, resume, stop, dlq, apis, deploy. */
import { createWriteStream } from 'node:fs';
import { basename, resolve } from 'node:path';
import { Command } from 'commander';
import type { JetbatchClient } from '../client/client.js';
import { decodeValue } from '../fleet/protocol.js';
import { resultLine } from '../fleet/output.js';
import type { JobRecord, JobStatus, JobStatusName } from '../types.js';
import { isTerminal } from '../types.js';
import { statusListArg } from './args.js';
import { ExitCodes, intArg, printJson, withClient, withConnectionOptions, type ConnectionFlags } from './common.js';
import { statusLine, statusReport } from './format.js';
import { progressView } from './progress.js';
import { exitCodeOfStatus, registerSubmit } from './submit.js';

export function registerClientCommands(program: Command, setExit: (code: number) => void): void {
  registerSubmit(program, setExit);

  withConnectionOptions(
    program
      .command('status')
      .description('show a job’s status and progress')
      .argument('<job>', 'job id')
      .option('--json', 'print the status object as JSON')
      .option('--watch', 'keep showing progress until the job ends'),
  ).action(async (job: string, flags: ConnectionFlags & { json?: boolean; watch?: boolean }) => {
    await withClient(flags, async (client) => {
      if (!flags.watch) {
        const s = await client.status(job);
        if (flags.json) printJson(s);
        else process.stdout.write(statusReport(s));
        return;
      }
      const view = progressView();
      const final = await client.wait(job, { onStatus: (s) => view.update(s) });
      view.stop();
      if (flags.json) printJson(final);
      else process.stdout.write(statusReport(final));
      setExit(isTerminal(final.status) ? exitCodeOfStatus(final) : ExitCodes.ok);
    });
  });

  withConnectionOptions(
    program
      .command('jobs')
      .description('list jobs, newest first')
      .option('--api <name>', 'only jobs of this API')
      .option('--status <s>', 'only jobs in this status (several comma-separated: succeeded,completed_with_failures)', statusListArg('--status'))
      .option('--limit <n>', 'at most this many', intArg('--limit'))
      .option('--json', 'print a JSON array of status objects'),
  ).action(async (flags: JobsFlags) => {
    await withClient(flags, async (client) => {
      const list = await listJobs(client, flags);
      if (flags.json) printJson(list);
      else for (const s of list) process.stdout.write(statusLine(s) + '\n');
    });
  });

  withConnectionOptions(
    program
      .command('results')
      .description(
        'print every batch result of a job as JSON Lines {job_id, batch_id, result, duration_ms, attempt}, one line per batch, ' +
          'in the order the batches finished (--sort: by batch id; a job with an output is read from it, in batch order)',
      )
      .argument('<job>', 'job id')
      .option('--out <file>', 'write to a file instead of stdout')
      .option('--sort', 'order by batch id numerically (0, 1, 2, …) instead of completion order')
      .option('--per-item', 'one line per input item, in input order: {item_index, batch_id, result} (a job of items with a fixed batch size whose handler returns one value per item)'),
  ).action(async (job: string, flags: ConnectionFlags & { out?: string; sort?: boolean; perItem?: boolean }) => {
    await withClient(flags, async (client) => {
      const out: NodeJS.WritableStream = flags.out === undefined ? process.stdout : createWriteStream(flags.out);
      const lines = flags.perItem === true ? client.itemResults(job) : client.results(job, { order: flags.sort ? 'batch' : 'completion' });
      try {
        for await (const r of lines) {
          if (!out.write(resultLine(r))) await new Promise<void>((resolve) => out.once('drain', () => resolve()));
        }
      } finally {
        if (out !== process.stdout) await new Promise<void>((resolve) => out.end(() => resolve()));
      }
    });
  });

  withConnectionOptions(
    program
      .command('pause')
      .description('pause a job: no new batch of it starts anywhere (running ones finish); its queue stays and its timeout stops running')
      .argument('<job>', 'job id')
      .option('--json', 'print the job record as JSON'),
  ).action(async (job: string, flags: ConnectionFlags & { json?: boolean }) => {
    await withClient(flags, async (client) => {
      // Returns once no batch of the job can start any more (about 1.5 s), so "paused" means it.
      const before = await client.record(job);
      const record = await client.pause(job);
      if (flags.json) printJson(record);
      else process.stdout.write(before.paused_at == null ? `paused ${record.job_id} (${record.status}); no new batch of it starts\n` : `${record.job_id} was already paused since ${record.paused_at}\n`);
    });
  });

  withConnectionOptions(
    program
      .command('resume')
      .description('resume a paused job where it stopped')
      .argument('<job>', 'job id')
      .option('--json', 'print the job record as JSON'),
  ).action(async (job: string, flags: ConnectionFlags & { json?: boolean }) => {
    await withClient(flags, async (client) => {
      const before = await client.record(job);
      const record = await client.resume(job);
      if (flags.json) printJson(record);
      else process.stdout.write(before.paused_at == null ? `${record.job_id} was not paused (${record.status})\n` : `resumed ${record.job_id} (${record.status}) after ${pausedFor(before, record)} paused\n`);
    });
  });

  withConnectionOptions(
    program
      .command('stop')
      .description('stop a job: abort its in-flight batches, discard its queue, mark it stopped')
      .argument('<job>', 'job id')
      .option('--json', 'print the job record as JSON'),
  ).action(async (job: string, flags: ConnectionFlags & { json?: boolean }) => {
    await withClient(flags, async (client) => {
      const record = await client.stop(job);
      if (flags.json) printJson(record);
      else process.stdout.write(`${record.job_id} ${record.status}\n`);
    });
  });

  withConnectionOptions(
    program
      .command('dlq')
      .description('list a job’s dead letters (failed batches with their last error), or replay them')
      .argument('<job>', 'job id')
      .option('--json', 'print JSON (payloads decoded to items)')
      .option('--replay', 're-enqueue every dead-lettered batch as a new attempt of the same job'),
  ).action(async (job: string, flags: ConnectionFlags & { json?: boolean; replay?: boolean }) => {
    await withClient(flags, async (client) => {
      if (flags.replay) {
        const { record, replayed } = await client.replayDeadLetters(job);
        if (flags.json) printJson({ replayed, job: record });
        else process.stdout.write(`replayed ${replayed} batches of ${record.job_id}; job is ${record.status}\n`);
        return;
      }
      const letters = await client.deadLetters(job);
      if (flags.json) {
        printJson(letters.map(({ payload, ...rest }) => ({ ...rest, items: decodeOrBase64(payload) })));
        return;
      }
      for (const l of letters) {
        process.stdout.write(`${l.batch_id}  attempts=${l.attempts}  ${l.error.code ?? l.error.name}: ${l.error.message}\n`);
      }
    });
  });

  withConnectionOptions(program.command('apis').description('list the APIs served by the fleet and their deployed versions').option('--json', 'print JSON')).action(
    async (flags: ConnectionFlags & { json?: boolean }) => {
      await withClient(flags, async (client) => {
        const [served, deployed] = await Promise.all([client.apis(), client.deployments()]);
        const names = [...new Set([...served.map((a) => a.api_name), ...deployed.map((d) => d.api_name)])].sort();
        const list = names.map((name) => {
          const s = served.find((a) => a.api_name === name);
          return {
            api_name: name,
            last_seen: s?.last_seen ?? null,
            live_daemons: s?.live_daemons ?? 0,
            lanes: s?.lanes ?? 0,
            unhealthy_daemons: s?.unhealthy_daemons ?? 0,
            error: s?.error ?? null,
            versions: deployed.filter((d) => d.api_name === name),
          };
        });
        if (flags.json) printJson(list);
        else {
          for (const a of list) {
            const v = a.versions[0];
            const live = a.live_daemons === 0 ? `no live daemon (last seen ${a.last_seen ?? 'never'})` : `${a.live_daemons} daemon${a.live_daemons === 1 ? '' : 's'}, ${a.lanes} thread${a.lanes === 1 ? '' : 's'}`;
            process.stdout.write(`${a.api_name}  ${live}  ${v ? `deployed=v${v.version} (${a.versions.length} versions, ${v.deployed_at})` : 'local project'}\n`);
            if (a.error !== null) {
              const where = a.unhealthy_daemons === a.live_daemons ? 'every live daemon' : `${a.unhealthy_daemons} of ${a.live_daemons} daemons`;
              process.stdout.write(`  UNHEALTHY on ${where}: ${a.error.code ?? a.error.name}: ${a.error.message.split('\n')[0]}\n`);
            }
          }
        }
      });
    },
  );

  withConnectionOptions(
    program
      .command('deploy')
      .description('pack a handler project folder and deploy it to the fleet as the next version of an API')
      .argument('<dir>', 'project folder')
      .option('--name <api>', 'API name (default: the folder name)')
      .option('--json', 'print the deployment as JSON'),
  ).action(async (dir: string, flags: ConnectionFlags & { name?: string; json?: boolean }) => {
    await withClient(flags, async (client) => {
      const d = await client.deploy(resolve(dir), flags.name ?? basename(resolve(dir)));
      if (flags.json) printJson(d);
      else {
        process.stdout.write(`deployed ${d.api_name} v${d.version}: ${d.files} files, ${d.size} bytes, sha256 ${d.sha256.slice(0, 12)}\n`);
        if (d.skipped.length > 0) process.stderr.write(`skipped (links or special files): ${d.skipped.join(', ')}\n`);
      }
    });
  });
}

interface JobsFlags extends ConnectionFlags {
  api?: string;
  status?: JobStatusName[];
  limit?: number;
  json?: boolean;
}

/** The jobs the flags select, newest first; with --status the limit counts matching jobs only. */
async function listJobs(client: JetbatchClient, flags: JobsFlags): Promise<JobStatus[]> {
  const filter: { api?: string; limit?: number } = {};
  if (flags.api !== undefined) filter.api = flags.api;
  if (flags.limit !== undefined && flags.status === undefined) filter.limit = flags.limit;
  const list = await client.jobs(filter);
  const wanted = flags.status;
  if (wanted === undefined) return list;
  const matching = list.filter((s) => wanted.includes(s.status));
  return flags.limit === undefined ? matching : matching.slice(0, flags.limit);
}

/** How long the pause that `resume` just ended lasted, in seconds (the record's paused_ms grew by it). */
function pausedFor(before: JobRecord, after: JobRecord): string {
  const ms = (after.paused_ms ?? 0) - (before.paused_ms ?? 0);
  return `${(Math.max(0, ms) / 1000).toFixed(1)}s`;
}

function decodeOrBase64(payload: Uint8Array): unknown {
  try {
    return decodeValue(payload);
  } catch {
    return { undecodable_base64: Buffer.from(payload).toString('base64') };
  }
}
