/**
 * The systemd unit (config/jetbatch.service) and its installer (scripts/install-service):
 * `systemd-analyze verify` accepts the unit without a warning, its stop timeout leaves room for the daemon's
 * shutdown grace and watchdog, its restart policy and user are right, its hardening keeps GPUs reachable, and
 * `install-service --dry-run` plans every step without changing the host.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync, type SpawnSyncReturns } from 'node:child_process';
import { accessSync, constants, existsSync, lstatSync, statSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { delimiter, dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parse as parseYaml } from 'yaml';
import { parseConfig } from '../src/daemon/config.js';
import { parseDuration } from '../src/util/duration.js';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const UNIT_FILE = join(ROOT, 'config', 'jetbatch.service');
const INSTALLER = join(ROOT, 'scripts', 'install-service');
/** The daemon's own watchdog: `start` exits 1 this long after shutdown_grace (src/cli/start.ts). */
const WATCHDOG_MARGIN_MS = 15_000;

// ------------------------------------------------------------------------------------------------------------
// A small unit-file reader: sections → key → every value (a key may repeat), comments and blank lines dropped.

type Unit = Map<string, Map<string, string[]>>;

function parseUnit(text: string): Unit {
  const unit: Unit = new Map();
  let section: Map<string, string[]> | undefined;
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    let line = lines[i]!.trim();
    while (line.endsWith('\\') && i + 1 < lines.length) line = line.slice(0, -1) + ' ' + lines[++i]!.trim();
    if (line === '' || line.startsWith('#') || line.startsWith(';')) continue;
    const header = /^\[(.+)\]$/.exec(line);
    if (header) {
      section = unit.get(header[1]!) ?? new Map();
      unit.set(header[1]!, section);
      continue;
    }
    const eq = line.indexOf('=');
    assert.ok(section !== undefined && eq > 0, `unit line outside a section or without "=": ${line}`);
    const key = line.slice(0, eq).trim();
    const values = section.get(key) ?? [];
    values.push(line.slice(eq + 1).trim());
    section.set(key, values);
  }
  return unit;
}

/** The effective (last) value of a key, as systemd reads single-valued settings. */
function get(unit: Unit, section: string, key: string): string | undefined {
  return unit.get(section)?.get(key)?.at(-1);
}

function mustGet(unit: Unit, section: string, key: string): string {
  const v = get(unit, section, key);
  assert.ok(v !== undefined, `[${section}] ${key}= is not set`);
  return v;
}

/** systemd time span (`60s`, `1min 30s`, `45`, `2m`, `500ms`) in milliseconds; a bare number is seconds. */
function parseTimespan(value: string): number {
  const units: Record<string, number> = {
    us: 0.001, usec: 0.001, ms: 1, msec: 1,
    s: 1000, sec: 1000, second: 1000, seconds: 1000,
    m: 60_000, min: 60_000, minute: 60_000, minutes: 60_000,
    h: 3_600_000, hr: 3_600_000, hour: 3_600_000, hours: 3_600_000,
  };
  const text = value.trim();
  assert.notEqual(text, 'infinity', 'an infinite stop timeout would let a stuck shutdown hang forever');
  let total = 0;
  let rest = text;
  while (rest !== '') {
    const m = /^(\d+(?:\.\d+)?)\s*([a-z]*)\s*/.exec(rest);
    assert.ok(m, `"${value}" is not a time span`);
    const factor = m[2] === '' ? 1000 : units[m[2]!];
    assert.ok(factor !== undefined, `unknown time unit "${m[2]}" in "${value}"`);
    total += Number(m[1]) * factor;
    rest = rest.slice(m[0].length);
  }
  return total;
}

function which(cmd: string): string | undefined {
  for (const dir of (process.env.PATH ?? '').split(delimiter).concat(['/usr/bin', '/bin', '/usr/sbin', '/sbin'])) {
    const p = join(dir, cmd);
    try {
      accessSync(p, constants.X_OK);
      return p;
    } catch {
      // not here
    }
  }
  return undefined;
}

function run(cmd: string, args: string[], opts: { cwd?: string; env?: NodeJS.ProcessEnv } = {}): SpawnSyncReturns<string> {
  const r = spawnSync(cmd, args, { encoding: 'utf8', timeout: 60_000, cwd: opts.cwd ?? ROOT, env: opts.env ?? process.env });
  if (r.error) throw r.error;
  return r;
}

const SYSTEMD_ANALYZE = which('systemd-analyze');
const noSystemdAnalyze = SYSTEMD_ANALYZE === undefined
  ? 'systemd-analyze not found (Debian/Ubuntu: apt-get install systemd); the unit cannot be verified here'
  : false;

const unitText = await readFile(UNIT_FILE, 'utf8');
const unit = parseUnit(unitText);

// ------------------------------------------------------------------------------------------------------------

describe('config/jetbatch.service: systemd-analyze verify', () => {
  let dir: string;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'jetbatch-unit-'));
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  /**
   * verify checks that ExecStart's binary exists. The unit names the installed Node.js (/usr/bin/node, replaced by
   * the installer), so the copy under test runs this test's own node instead: everything else is verified as is.
   */
  async function verify(text: string, name = 'jetbatch.service'): Promise<{ status: number | null; ours: string[]; all: string }> {
    const file = join(dir, name);
    const execStart = /^ExecStart=(\S+)/m.exec(text);
    assert.ok(execStart, 'the unit has no ExecStart=');
    await writeFile(file, text.replace(/^ExecStart=\S+/m, `ExecStart=${process.execPath}`));
    const r = run(SYSTEMD_ANALYZE!, ['verify', '--recursive-errors=no', '--man=no', file], { cwd: dir });
    const all = `${r.stdout}${r.stderr}`;
    // Warnings about other units (say network-online.target on an unusual host) are not ours to fix.
    const ours = all.split('\n').filter((l) => l.includes(name) || l.includes(file));
    return { status: r.status, ours, all };
  }

  test('the unit verifies: exit 0 and no warning about it', { skip: noSystemdAnalyze }, async () => {
    const r = await verify(unitText);
    assert.deepEqual(r.ours, [], `systemd-analyze verify complained about the unit:\n${r.all}`);
    assert.equal(r.status, 0, `systemd-analyze verify exited ${r.status}:\n${r.all}`);
  });

  test('the check can fail: a misspelt key and a bad value are reported', { skip: noSystemdAnalyze }, async () => {
    // systemd-analyze exits 0 for unknown keys and unparsable values, only printing a warning: this is why the test
    // above looks at the output, and this one proves that it would see such a warning.
    const broken = unitText.replace('Restart=on-failure', 'Restart=on-failure\nRestartSecs=5s\nProtectSystem=strictest');
    const r = await verify(broken);
    assert.ok(r.ours.some((l) => /RestartSecs/.test(l)), `no warning about the unknown key:\n${r.all}`);
    assert.ok(r.ours.some((l) => /ProtectSystem|protect system/i.test(l)), `no warning about the bad value:\n${r.all}`);
    // And a missing ExecStart binary fails verify outright (why verify() substitutes an existing one).
    const file = join(dir, 'missing-exec.service');
    await writeFile(file, unitText.replace(/^ExecStart=\S+/m, `ExecStart=${join(dir, 'no-such-node')}`));
    const missing = run(SYSTEMD_ANALYZE!, ['verify', '--recursive-errors=no', '--man=no', file], { cwd: dir });
    assert.notEqual(missing.status, 0);
    assert.match(`${missing.stdout}${missing.stderr}`, /not executable|No such file/);
  });

  test('systemd-analyze security rates the sandbox better than MEDIUM', { skip: noSystemdAnalyze }, async (t) => {
    const file = join(dir, 'jetbatch.service');
    await writeFile(file, unitText.replace(/^ExecStart=\S+/m, `ExecStart=${process.execPath}`));
    const r = run(SYSTEMD_ANALYZE!, ['security', '--offline=yes', '--no-pager', file], { cwd: dir });
    const m = /Overall exposure level for jetbatch\.service: (\d+(?:\.\d+)?)/.exec(`${r.stdout}${r.stderr}`);
    if (!m) {
      t.skip('this systemd-analyze cannot rate unit files offline (--offline arrived in systemd 250)');
      return;
    }
    assert.ok(Number(m[1]) < 5, `exposure ${m[1]} (>= 5 is MEDIUM or worse):\n${r.stdout}`);
  });
});

describe('config/jetbatch.service: settings', () => {
  test('stop timeout outlasts the default shutdown_grace and the daemon watchdog', async () => {
    const stopMs = parseTimespan(mustGet(unit, 'Service', 'TimeoutStopSec'));
    // The default, from the config loader itself.
    const defaults = parseConfig({ apis: [{ name: 'x', project: '.' }] }, join(ROOT, 'config', 'jetbatch.yaml'));
    assert.ok(stopMs > defaults.shutdownGraceMs, `TimeoutStopSec ${stopMs} ms <= default shutdown_grace ${defaults.shutdownGraceMs} ms`);
    assert.ok(
      stopMs > defaults.shutdownGraceMs + WATCHDOG_MARGIN_MS,
      `TimeoutStopSec ${stopMs} ms <= shutdown_grace + watchdog margin (${defaults.shutdownGraceMs + WATCHDOG_MARGIN_MS} ms): systemd would SIGKILL before the daemon's own watchdog`,
    );
    // The example config installed by scripts/install-service.
    const example = parseYaml(await readFile(join(ROOT, 'config', 'jetbatch.yaml'), 'utf8')) as { shutdown_grace?: string | number };
    if (example.shutdown_grace !== undefined) {
      const graceMs = parseDuration(example.shutdown_grace);
      assert.ok(stopMs > graceMs + WATCHDOG_MARGIN_MS, `TimeoutStopSec ${stopMs} ms <= config/jetbatch.yaml shutdown_grace ${graceMs} ms + 15 s`);
    }
    assert.equal(get(unit, 'Service', 'KillSignal'), 'SIGTERM');
    assert.equal(get(unit, 'Service', 'SendSIGKILL'), 'yes');
    assert.match(unitText, /TimeoutStopSec.*shutdown_grace|shutdown_grace[\s\S]{0,400}TimeoutStopSec/, 'a comment ties TimeoutStopSec to shutdown_grace');
  });

  test('restart policy: on failure, delayed, rate-limited, not for a bad config', () => {
    assert.equal(get(unit, 'Service', 'Restart'), 'on-failure');
    const restartMs = parseTimespan(mustGet(unit, 'Service', 'RestartSec'));
    const burst = Number(mustGet(unit, 'Unit', 'StartLimitBurst'));
    const intervalMs = parseTimespan(mustGet(unit, 'Unit', 'StartLimitIntervalSec'));
    assert.ok(restartMs >= 1000, 'RestartSec of at least 1 s');
    assert.ok(Number.isInteger(burst) && burst > 1 && intervalMs > 0, 'a start-rate limit is set');
    // Restarts spaced by RestartSec never reach the limit: a daemon waiting for NATS (exit 3) must not be given up.
    assert.ok((burst - 1) * restartMs >= intervalMs, `${burst} starts ${restartMs} ms apart fit in ${intervalMs} ms: a long NATS outage would leave the unit failed`);
    // Exit code 2 = JB_INVALID_CONFIG / usage (docs/configuration.md): restarting cannot help.
    assert.ok((get(unit, 'Service', 'RestartPreventExitStatus') ?? '').split(/\s+/).includes('2'));
  });

  test('runs as the unprivileged jetbatch user, never root', () => {
    const user = mustGet(unit, 'Service', 'User');
    assert.notEqual(user, 'root');
    assert.notEqual(user, '0');
    assert.equal(user, 'jetbatch');
    assert.equal(get(unit, 'Service', 'Group'), 'jetbatch');
    assert.equal(get(unit, 'Service', 'DynamicUser') ?? 'no', 'no');
    assert.deepEqual(mustGet(unit, 'Service', 'SupplementaryGroups').split(/\s+/).sort(), ['render', 'video']);
  });

  test('start, reload, logs and state', () => {
    assert.equal(get(unit, 'Service', 'Type'), 'simple');
    const execStart = mustGet(unit, 'Service', 'ExecStart');
    assert.match(execStart, /^\/\S+ \/opt\/jetbatch\/current\/bin\/jetbatch\.js start --config \/etc\/jetbatch\/jetbatch\.yaml$/);
    assert.ok(existsSync(join(ROOT, 'bin', 'jetbatch.js')), 'the unit runs bin/jetbatch.js of the installed release');
    assert.match(mustGet(unit, 'Service', 'ExecReload'), /^\/\S*kill -HUP \$MAINPID$/);
    assert.equal(get(unit, 'Service', 'StandardOutput'), 'journal');
    assert.equal(get(unit, 'Service', 'StateDirectory'), 'jetbatch');
    assert.equal(get(unit, 'Service', 'WorkingDirectory'), '/var/lib/jetbatch');
    assert.ok(unit.get('Service')!.get('Environment')!.includes('NODE_ENV=production'));
    assert.ok(Number(mustGet(unit, 'Service', 'LimitNOFILE')) >= 4096);
    assert.equal(get(unit, 'Install', 'WantedBy'), 'multi-user.target');
  });

  test('hardening that leaves GPUs and the V8 JIT working', () => {
    for (const [key, value] of Object.entries({
      NoNewPrivileges: 'yes',
      ProtectSystem: 'strict',
      ProtectHome: 'yes',
      PrivateTmp: 'yes',
      ProtectKernelTunables: 'yes',
      ProtectKernelModules: 'yes',
      ProtectControlGroups: 'yes',
      RestrictSUIDSGID: 'yes',
      LockPersonality: 'yes',
      RestrictRealtime: 'yes',
    })) {
      assert.equal(get(unit, 'Service', key), value, `${key}=${value}`);
    }
    assert.ok(mustGet(unit, 'Service', 'ReadWritePaths').split(/\s+/).includes('/var/lib/jetbatch'));
    // Off on purpose, each explained in a comment: a private /dev hides /dev/nvidia*; V8 needs W+X pages;
    // ProtectClock= implies DeviceAllow=, which closes the device policy.
    for (const key of ['PrivateDevices', 'MemoryDenyWriteExecute', 'ProtectClock']) {
      assert.notEqual(get(unit, 'Service', key), 'yes', `${key}=yes breaks GPU access or Node.js`);
      assert.match(unitText, new RegExp(`^# .*${key}=yes: `, 'm'), `a comment explains why ${key} is not set`);
    }
    // DeviceAllow= only with the default (auto) policy left alone... and here not at all: file permissions decide.
    assert.equal(get(unit, 'Service', 'DeviceAllow'), undefined);
    assert.ok(['auto', undefined].includes(get(unit, 'Service', 'DevicePolicy')));
  });
});

// ------------------------------------------------------------------------------------------------------------

describe('scripts/install-service', () => {
  const watched = ['/etc/jetbatch', '/etc/systemd/system/jetbatch.service', '/usr/local/bin/jetbatch'];
  const snapshot = (): string[] =>
    watched.map((p) => {
      try {
        const s = lstatSync(p);
        return `${p} ${s.mode} ${s.mtimeMs} ${s.size}`;
      } catch {
        return `${p} absent`;
      }
    });
  let scratch: string;
  // Not under a folder the unit hides from the service (the installer refuses such a prefix): the checkout's tmp/
  // unless the checkout itself lives under one (a CI clone in /tmp), then /var/lib.
  const hidden = /^\/(tmp|var\/tmp|home|root|run\/user)(\/|$)/;
  const scratchParent = hidden.test(ROOT) ? '/var/lib/jetbatch-install-test' : join(ROOT, 'tmp');
  const madeParent = !existsSync(scratchParent);
  before(async () => {
    // Under the checkout's ignored tmp/: not under the system temp dir, which the installer refuses as a prefix
    // because the unit's PrivateTmp=yes hides it from the service.
    await mkdir(scratchParent, { recursive: true });
    scratch = await mkdtemp(join(scratchParent, 'install-service-'));
  });
  after(async () => {
    await rm(scratch, { recursive: true, force: true });
    if (madeParent && (await readdir(scratchParent)).length === 0) await rm(scratchParent, { recursive: true });
  });

  test('is an executable bash script with valid syntax', () => {
    assert.ok((statSync(INSTALLER).mode & 0o111) !== 0, 'scripts/install-service is not executable');
    const r = run('bash', ['-n', INSTALLER]);
    assert.equal(r.status, 0, r.stderr);
    const help = run('bash', [INSTALLER, '--help']);
    assert.equal(help.status, 0);
    for (const opt of ['--prefix', '--config', '--dry-run', '--no-start']) assert.ok(help.stdout.includes(opt), `--help lacks ${opt}`);
  });

  async function dryRun(prefix: string, extra: string[] = [], asUser?: number): Promise<SpawnSyncReturns<string>> {
    const before = snapshot();
    const args = [INSTALLER, '--dry-run', '--prefix', prefix, '--node', process.execPath, ...extra];
    const r = asUser === undefined
      ? run('bash', args)
      : run('setpriv', [`--reuid=${asUser}`, `--regid=${asUser}`, '--clear-groups', 'bash', ...args], { cwd: '/' });
    assert.deepEqual(snapshot(), before, 'a dry run changed /etc or /usr/local/bin');
    return r;
  }

  function assertPlan(r: SpawnSyncReturns<string>, prefix: string): void {
    assert.equal(r.status, 0, `dry run exited ${r.status}:\n${r.stdout}\n${r.stderr}`);
    const out = r.stdout;
    for (const expected of [
      'dry run: nothing will be changed',
      'npm --prefix', 'run build',
      `${prefix}/releases/`,
      'ci --omit=dev',
      '/etc/jetbatch/jetbatch.yaml',
      `ExecStart=${process.execPath} ${prefix}/current/bin/jetbatch.js start --config /etc/jetbatch/jetbatch.yaml`,
      '/etc/systemd/system/jetbatch.service',
      'systemctl daemon-reload',
      'systemctl enable jetbatch.service',
      'dry run done: nothing was changed',
    ]) {
      assert.ok(out.includes(expected), `the plan does not mention "${expected}":\n${out}`);
    }
    // Host-dependent steps: planned if missing, reported if already there.
    assert.match(out, /would run: useradd --system .*jetbatch$|user jetbatch exists/m);
    for (const g of ['video', 'render']) assert.match(out, new RegExp(`would run: groupadd --system ${g}$|group ${g} exists`, 'm'));
    assert.match(out, /would write: \/etc\/jetbatch\/jetbatch\.yaml|would run: install -m 0640 .* \/etc\/jetbatch\/jetbatch\.yaml$|\/etc\/jetbatch\/jetbatch\.yaml exists: kept/m);
  }

  test('--dry-run --prefix <tmp> prints the plan and creates nothing', async () => {
    const prefix = join(scratch, 'opt');
    const r = await dryRun(prefix);
    assertPlan(r, prefix);
    assert.match(r.stdout, /systemctl restart jetbatch\.service/);
    assert.deepEqual(await readdir(scratch), [], 'a dry run created files under the prefix');
  });

  test('--dry-run --no-start --config FILE plans no start and names the config', async () => {
    const prefix = join(scratch, 'opt2');
    const config = join(scratch, 'host.yaml');
    await writeFile(config, 'apis:\n  - { name: echo, project: /srv/handlers/echo }\n');
    let r: SpawnSyncReturns<string>;
    try {
      r = await dryRun(prefix, ['--no-start', '--config', config]);
    } finally {
      await rm(config);
    }
    assertPlan(r, prefix);
    assert.doesNotMatch(r.stdout, /would run: systemctl (re)?start/);
    assert.match(r.stdout, /--no-start: not starting/);
    assert.ok(r.stdout.includes(config) || r.stdout.includes('/etc/jetbatch/jetbatch.yaml exists: kept'), 'the plan names the --config file');
    assert.deepEqual(await readdir(scratch), []);
  });

  test('--dry-run works without root', async (t) => {
    if (process.getuid?.() !== 0) {
      const prefix = join(scratch, 'opt3');
      assertPlan(await dryRun(prefix), prefix);
      return;
    }
    // As root: drop to nobody, if it can read the checkout.
    if (which('setpriv') === undefined) return t.skip('running as root and setpriv is missing');
    const check = run('setpriv', ['--reuid=65534', '--regid=65534', '--clear-groups', 'test', '-r', join(ROOT, 'package.json')]);
    if (check.status !== 0) return t.skip(`user nobody cannot read ${ROOT}`);
    const prefix = '/opt/jetbatch-dry-run-test';
    const r = await dryRun(prefix, [], 65534);
    assertPlan(r, prefix);
    assert.match(r.stdout, /not running as root/);
    assert.equal(existsSync(prefix), false);
  });

  test('refuses clearly: a prefix the sandbox hides, a relative prefix, a missing config, an unknown flag', async () => {
    const hidden = await dryRun(join(tmpdir(), 'jetbatch-prefix'));
    assert.equal(hidden.status, 1);
    assert.match(hidden.stderr, /install-service: error: --prefix .* is invisible to the service .*PrivateTmp=yes/);
    const relative = await dryRun('opt/jetbatch');
    assert.equal(relative.status, 1);
    assert.match(relative.stderr, /--prefix must be an absolute path/);
    const noConfig = await dryRun(join(scratch, 'opt'), ['--config', join(scratch, 'missing.yaml')]);
    assert.equal(noConfig.status, 1);
    assert.match(noConfig.stderr, /--config: cannot read .*missing\.yaml/);
    const unknown = run('bash', [INSTALLER, '--frobnicate']);
    assert.equal(unknown.status, 2);
    assert.match(unknown.stderr, /unknown argument: --frobnicate/);
    assert.deepEqual(await readdir(scratch), []);
  });

  test('a real run without root stops before changing anything', (t) => {
    if (process.getuid?.() === 0) {
      if (which('setpriv') === undefined) return t.skip('running as root and setpriv is missing');
      const check = run('setpriv', ['--reuid=65534', '--regid=65534', '--clear-groups', 'test', '-r', INSTALLER]);
      if (check.status !== 0) return t.skip(`user nobody cannot read ${INSTALLER}`);
    }
    const args = [INSTALLER, '--prefix', '/opt/jetbatch-root-test', '--node', process.execPath];
    const r = process.getuid?.() === 0
      ? run('setpriv', ['--reuid=65534', '--regid=65534', '--clear-groups', 'bash', ...args], { cwd: '/' })
      : run('bash', args);
    assert.equal(r.status, 1);
    assert.match(r.stderr, /install-service: error: must run as root/);
    assert.equal(existsSync('/opt/jetbatch-root-test'), false);
  });
});
