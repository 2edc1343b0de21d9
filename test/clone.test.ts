/**
 * A clone works as README.md says, from anywhere (issue #14, items 1 and 10). In a copy of this tree (what a clone of
 * it holds): `npm ci` prints no warning and builds dist/; `npm link --ignore-scripts` puts `jetbatch` on PATH; a daemon
 * started from a directory outside the clone, serving the README's handler as a project there, completes the jobs of
 * `jetbatch submit` and of the README's TypeScript client example (type-checked and run against the built package);
 * and the same daemon runs from the TypeScript source once dist/ is gone (it used to crash: `Cannot find package
 * 'tsx' imported from <its working directory>`).
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess, type SpawnSyncReturns } from 'node:child_process';
import { copyFileSync, existsSync, lstatSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { stringify } from 'yaml';
import { ROOT, tempDir } from './helpers/daemon.js';
import { NatsServer } from './helpers/nats-server.js';
import { waitUntil } from './helpers/wait.js';

const scratch = tempDir('jetbatch-clone-');
const clone = join(scratch, 'jetbatch');
/** npm's global prefix for `npm link` (a user without root would set one too: README). */
const prefix = join(scratch, 'prefix');
/** Where a user keeps their config and handler project: outside the clone. */
const outside = join(scratch, 'elsewhere');

/**
 * npm 10 ignores package.json's allowScripts (and would download onnxruntime's CUDA libraries); npm 11 reads it from
 * 11.16 and skips denied packages' scripts by 11.17 (checked here with 11.19).
 */
const npmVersion = spawnSync('npm', ['--version'], { encoding: 'utf8' }).stdout.trim();
const [npmMajor = 0, npmMinor = 0] = npmVersion.split('.').map(Number);
const npmHasAllowScripts = npmMajor > 11 || (npmMajor === 11 && npmMinor >= 17);

/** The environment of a user's shell: none of the npm_* variables `npm test` sets for this process. */
function userEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!/^npm_/i.test(k)) env[k] = v;
  return { ...env, PATH: `${join(prefix, 'bin')}:${process.env.PATH ?? ''}`, ...extra };
}

function sh(cmd: string, args: string[], cwd: string, extra: Record<string, string> = {}): SpawnSyncReturns<string> {
  return spawnSync(cmd, args, { cwd, env: userEnv(extra), encoding: 'utf8', timeout: 240_000 });
}

function ok(r: SpawnSyncReturns<string>, what: string): string {
  assert.equal(r.status, 0, `${what} exited ${r.status ?? r.signal}:\n${r.stdout}\n${r.stderr}`);
  return r.stdout;
}

/** The first fenced block of README.md (of the clone) in `lang` whose text includes `marker`. */
function readmeBlock(lang: string, marker: string): string {
  const readme = readFileSync(join(clone, 'README.md'), 'utf8');
  for (const m of readme.matchAll(new RegExp('```' + lang + '\\n([\\s\\S]*?)```', 'g'))) if (m[1]!.includes(marker)) return m[1]!;
  throw new Error(`README.md has no ${lang} block with ${marker}`);
}

/** Copies the files a clone of this tree holds: tracked and untracked ones, without ignored ones (node_modules, dist). */
function copyTree(): void {
  const listed = spawnSync('git', ['ls-files', '-z', '--cached', '--others', '--exclude-standard'], { cwd: ROOT, encoding: 'utf8' });
  if (listed.status !== 0) throw new Error(`git ls-files failed: ${listed.stderr}`);
  for (const file of listed.stdout.split('\0')) {
    // Deleted in the working tree, or not a regular file (a symlink git does not ignore, e.g. to a node_modules).
    if (file === '' || !existsSync(join(ROOT, file)) || !lstatSync(join(ROOT, file)).isFile()) continue;
    mkdirSync(dirname(join(clone, file)), { recursive: true });
    copyFileSync(join(ROOT, file), join(clone, file));
  }
}

/** `jetbatch start` from `outside`, through the PATH that `npm link` set up. */
class Daemon {
  readonly proc: ChildProcess;
  output = '';

  constructor() {
    this.proc = spawn('jetbatch', ['start', '--config', 'jetbatch.yaml'], { cwd: outside, env: userEnv(), stdio: ['ignore', 'pipe', 'pipe'] });
    this.proc.stdout?.on('data', (d: Buffer) => (this.output += d.toString()));
    this.proc.stderr?.on('data', (d: Buffer) => (this.output += d.toString()));
  }

  async started(): Promise<void> {
    await waitUntil('the daemon to start', () => {
      if (this.proc.exitCode !== null) throw new Error(`daemon exited (${this.proc.exitCode}):\n${this.output}`);
      return this.output.includes('daemon started');
    }, { timeoutMs: 60_000, detail: () => this.output });
  }

  async stop(): Promise<number | string> {
    if (this.proc.exitCode !== null || this.proc.signalCode !== null) return this.proc.exitCode ?? this.proc.signalCode ?? -1;
    return new Promise((resolve) => {
      this.proc.once('exit', (code, sig) => resolve(code ?? sig ?? -1));
      this.proc.kill('SIGTERM');
    });
  }
}

describe('a clone, used as README.md says', { skip: existsSync(join(ROOT, '.git')) ? false : 'not a git checkout' }, () => {
  let server: NatsServer;
  let install: SpawnSyncReturns<string>;
  const daemons: Daemon[] = [];

  before(async () => {
    copyTree();
    // A plain `npm ci` as README says (the package cache the outer `npm ci` filled spares the downloads).
    install = sh('npm', ['ci', '--prefer-offline', '--no-audit', '--no-fund'], clone, npmHasAllowScripts ? {} : { ONNXRUNTIME_NODE_INSTALL: 'skip' });
    server = await NatsServer.start();
    mkdirSync(join(outside, 'echo'), { recursive: true });
    writeFileSync(join(outside, 'echo', 'handler.ts'), readmeBlock('ts', 'export default class Handler'));
    writeFileSync(join(outside, 'jetbatch.yaml'), stringify({
      nats: { servers: [server.url] },
      apis: [{ name: 'echo', project: './echo', threads: 2 }],
      metrics: { enabled: false },
    }));
    writeFileSync(join(outside, 'items.jsonl'), Array.from({ length: 7 }, (_, i) => JSON.stringify(i)).join('\n') + '\n');
  });

  after(async () => {
    await Promise.all(daemons.map((d) => d.stop()));
    await server?.dispose();
    rmSync(scratch, { recursive: true, force: true });
  });

  test('npm ci succeeds without a warning and builds dist/', { skip: npmHasAllowScripts ? false : `npm ${npmVersion} < 11.17 does not honour allowScripts` }, () => {
    const out = ok(install, 'npm ci');
    const warnings = `${out}\n${install.stderr}`.split('\n').filter((l) => /^npm warn/i.test(l));
    assert.deepEqual(warnings, [], 'npm ci warned');
    for (const f of ['dist/cli/main.js', 'dist/index.js', 'dist/index.d.ts', 'dist/handler.js']) assert.ok(existsSync(join(clone, f)), `npm ci built no ${f}`);
  });

  test('`npm link --ignore-scripts` puts jetbatch on PATH; `npx jetbatch` works inside the clone', () => {
    ok(install, 'npm ci');
    const link = sh('npm', ['link', '--ignore-scripts'], clone, { npm_config_prefix: prefix });
    ok(link, 'npm link');
    assert.doesNotMatch(`${link.stdout}${link.stderr}`, /^npm warn/im);
    assert.match(ok(sh('jetbatch', ['--help'], outside), 'jetbatch --help'), /Usage: jetbatch/);
    const version = (JSON.parse(readFileSync(join(clone, 'package.json'), 'utf8')) as { version: string }).version;
    assert.equal(ok(sh('npx', ['jetbatch', '--version'], join(clone, 'docs')), 'npx jetbatch --version').trim(), version);
  });

  test('a daemon started outside the clone runs the README handler for `jetbatch submit` and the TypeScript example', async () => {
    const daemon = new Daemon();
    daemons.push(daemon);
    await daemon.started();
    const env = { NATS_URL: server.url };

    const submit = sh('jetbatch', ['submit', 'echo', '--items', 'items.jsonl', '--batch-size', '2', '--wait'], outside, env);
    ok(submit, 'jetbatch submit --wait');
    const jobId = /submitted job (\S+)/.exec(submit.stderr + submit.stdout)?.[1];
    assert.ok(jobId, submit.stderr + submit.stdout);
    const results = ok(sh('jetbatch', ['results', jobId, '--sort'], outside, env), 'jetbatch results').trim().split('\n').map((l) => JSON.parse(l) as { batch_id: string; result: unknown });
    assert.deepEqual(results.map((r) => r.result), [[{ x: 0 }, { x: 1 }], [{ x: 2 }, { x: 3 }], [{ x: 4 }, { x: 5 }], [{ x: 6 }]]);

    // The README's client example, as a module of the clone (it imports the package by its name: dist/).
    writeFileSync(join(clone, 'example.mts'), readmeBlock('ts', "from 'jetbatch'").replaceAll('nats://127.0.0.1:4222', server.url));
    ok(sh(process.execPath, [join(clone, 'node_modules', 'typescript', 'bin', 'tsc'), '--noEmit', '--strict', '--module', 'nodenext',
      '--moduleResolution', 'nodenext', '--target', 'es2022', '--types', 'node', '--skipLibCheck', 'example.mts'], clone), 'tsc example.mts');
    const printed = ok(sh('npx', ['tsx', 'example.mts'], clone), 'npx tsx example.mts');
    // console.log(r.batch_id, r.result) of 10 batches of 10 items: "<batch id> [ { x: … }, …".
    const batchIds = [...printed.matchAll(/^(\d+) \[/gm)].map((m) => Number(m[1])).sort((a, b) => a - b);
    assert.deepEqual(batchIds, [0, 1, 2, 3, 4, 5, 6, 7, 8, 9], printed);
    assert.equal([...printed.matchAll(/\{ x: \d+ \}/g)].length, 100, printed);

    assert.equal(await daemon.stop(), 0, daemon.output);
    assert.doesNotMatch(daemon.output, /"level":50/, 'the daemon logged an error');
  });

  test('without dist/, the daemon runs from the TypeScript source, still outside the clone', async () => {
    rmSync(join(clone, 'dist'), { recursive: true, force: true });
    const daemon = new Daemon();
    daemons.push(daemon);
    await daemon.started();
    const out = ok(sh('jetbatch', ['submit', 'echo', '--items', 'items.jsonl', '--batch-size', '3', '--wait'], outside, { NATS_URL: server.url }), 'jetbatch submit --wait');
    assert.match(out, /succeeded/);
    assert.equal(await daemon.stop(), 0, daemon.output);
    assert.doesNotMatch(daemon.output, /"level":50|Cannot find package/);
  });
});
