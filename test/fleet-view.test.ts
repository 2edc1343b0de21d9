/**
 * FleetView (src/daemon/fleet-view.ts) on a real nats-server: the lanes the live fleet offers per API, read from the
 * heartbeats in JETBATCH_DAEMONS plus this daemon's own figure. Liveness is judged on an injected clock, so a peer
 * going stale needs no real waiting; the watch's deliveries are awaited with waitUntil, never with sleeps.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { after, afterEach, before, describe, test } from 'node:test';
import pino, { type Logger } from 'pino';
import { FleetView } from '../src/daemon/fleet-view.js';
import type { FleetContext } from '../src/fleet/context.js';
import { encodeJson } from '../src/fleet/protocol.js';
import type { DaemonRecord } from '../src/types.js';
import { ROOT } from './helpers/daemon.js';
import type { NatsServer } from './helpers/nats-server.js';
import { provisionedFleet, type ProvisionedFleet } from './helpers/fleet.js';
import { waitUntil } from './helpers/wait.js';

const SELF = 'self-daemon';

let seq = 0;
/** A name no earlier test used: every test has its own API and daemon ids in the shared bucket. */
const unique = (what: string): string => `${what}-${++seq}`;

/** A heartbeat of daemon `id`; a null `presenceTimeoutMs` leaves the field out. */
function record(id: string, lanes: Record<string, number> | undefined, presenceTimeoutMs: number | null = 10_000): Partial<DaemonRecord> {
  const now = new Date().toISOString();
  const r: Partial<DaemonRecord> = { daemon: id, host: 'test-host', pid: 1, apis: Object.keys(lanes ?? {}), started: now, last_seen: now };
  if (presenceTimeoutMs !== null) r.presence_timeout_ms = presenceTimeoutMs;
  if (lanes !== undefined) r.lanes = lanes;
  return r;
}

/** A clock the test moves by hand (ms). */
class Clock {
  t = 1_000;
  readonly now = (): number => this.t;
}

describe('FleetView', () => {
  let fleet: ProvisionedFleet;
  let server: NatsServer;
  let ctx: FleetContext;
  const views: FleetView[] = [];
  /** Warnings and errors the views log (a failing watch restarts with a warning). */
  const logged: string[] = [];
  const log: Logger = pino({ level: 'warn' }, { write: (line: string) => void logged.push(line) });

  /** A view for this test's `api` with `own` lanes of its own, on `clock`, started unless told otherwise. */
  function view(own: Map<string, number>, clock: Clock, start = true): FleetView {
    const v = new FleetView(ctx.daemons, log, SELF, (api) => own.get(api) ?? 0, clock.now);
    views.push(v);
    if (start) v.start();
    return v;
  }

  const put = async (key: string, value: unknown): Promise<void> => {
    await ctx.daemons.put(key, value instanceof Uint8Array ? value : encodeJson(value));
  };

  const until = (v: FleetView, api: string, lanes: number, what: string): Promise<true> =>
    waitUntil(what, () => v.lanes(api) === lanes, { timeoutMs: 10_000, intervalMs: 10, detail: () => `lanes ${v.lanes(api)}, want ${lanes}` });

  before(async () => {
    fleet = await provisionedFleet();
    ({ server, ctx } = fleet);
  });

  afterEach(async () => {
    await Promise.all(views.splice(0).map((v) => v.stop()));
    assert.deepEqual(logged.splice(0), [], 'nothing logged: the watch never failed');
  });

  after(async () => {
    await fleet?.close();
  });

  test('counts its own lanes before any heartbeat, started or not, and reads them live', async () => {
    const api = unique('api');
    const own = new Map([[api, 4]]);
    const v = view(own, new Clock(), false);
    assert.equal(v.lanes(api), 4, 'not started');
    v.start();
    assert.equal(v.lanes(api), 4, 'started, no heartbeat seen yet');
    assert.equal(v.lanes(unique('other-api')), 0, 'an API it does not serve');
    own.set(api, 6);
    assert.equal(v.lanes(api), 6, 'its own figure is asked each time (a pool resized)');
  });

  test("sums a peer's lanes from its heartbeat, per API, including heartbeats written before it started", async () => {
    const api = unique('api');
    const api2 = unique('api');
    const [a, b] = [unique('peer'), unique('peer')];
    await put(a, record(a, { [api]: 3, [api2]: 5 }));
    const v = view(new Map([[api, 4]]), new Clock());
    await until(v, api, 4 + 3, 'the peer written before the watch started');
    assert.equal(v.lanes(api2), 5, 'its lanes for another API, none of ours');
    await put(b, record(b, { [api]: 2 }));
    await until(v, api, 4 + 3 + 2, 'a second peer');
    assert.equal(v.lanes(api2), 5);
    await put(a, record(a, { [api]: 1 }));
    await until(v, api, 4 + 1 + 2, "the first peer's next heartbeat replaces its figures");
    assert.equal(v.lanes(api2), 0, 'it no longer offers api2');
  });

  test('only positive numbers count as lanes; a heartbeat without lanes offers none', async () => {
    const api = unique('api');
    const [a, b, c] = [unique('peer'), unique('peer'), unique('peer')];
    const v = view(new Map([[api, 1]]), new Clock());
    await put(a, { ...record(a, undefined), lanes: { [api]: '5', x: null } });
    await put(b, record(b, { [api]: -3 }));
    await put(b, record(b, { [api]: 0 }));
    await put(c, record(c, undefined));
    await put(unique('sentinel'), record('sentinel', { [api]: 2 }));
    await until(v, api, 1 + 2, 'the sentinel written after the others');
  });

  test('ignores its own key: its own figure counts once', async () => {
    const api = unique('api');
    await put(SELF, record(SELF, { [api]: 100 }));
    const v = view(new Map([[api, 4]]), new Clock());
    const s = unique('sentinel');
    await put(s, record(s, { [api]: 1 }));
    await until(v, api, 4 + 1, 'the sentinel written after its own heartbeat');
    await put(SELF, record(SELF, { [api]: 200 }));
    const s2 = unique('sentinel');
    await put(s2, record(s2, { [api]: 1 }));
    await until(v, api, 4 + 2, 'a second sentinel, after its own next heartbeat');
    await ctx.daemons.delete(SELF);
  });

  test('drops a deleted or purged peer', async () => {
    const api = unique('api');
    const [a, b] = [unique('peer'), unique('peer')];
    const v = view(new Map([[api, 4]]), new Clock());
    await put(a, record(a, { [api]: 3 }));
    await put(b, record(b, { [api]: 2 }));
    await until(v, api, 9, 'both peers');
    await ctx.daemons.delete(a);
    await until(v, api, 6, 'the deleted peer gone');
    await ctx.daemons.purge(b);
    await until(v, api, 4, 'the purged peer gone');
    await put(a, record(a, { [api]: 3 }));
    await until(v, api, 7, 'a peer that comes back counts again');
  });

  test('a peer deleted before the view started is not counted', async () => {
    const api = unique('api');
    const a = unique('peer');
    await put(a, record(a, { [api]: 3 }));
    await ctx.daemons.delete(a);
    const v = view(new Map([[api, 4]]), new Clock());
    const s = unique('sentinel');
    await put(s, record(s, { [api]: 1 }));
    await until(v, api, 5, 'the sentinel');
  });

  test('drops a peer whose entry has not changed for its presence_timeout_ms (on its own clock), and counts it again at its next heartbeat', async () => {
    const api = unique('api');
    const a = unique('peer');
    const clock = new Clock();
    const v = view(new Map([[api, 4]]), clock);
    await put(a, record(a, { [api]: 3 }, 1000));
    await until(v, api, 7, 'the peer');
    clock.t += 800;
    await put(a, record(a, { [api]: 5 }, 1000)); // a heartbeat: its timeout starts again
    await until(v, api, 9, 'its heartbeat 800 ms later');
    clock.t += 1000;
    assert.equal(v.lanes(api), 9, '1000 ms after its last heartbeat: still live (1800 after the first)');
    clock.t += 1;
    assert.equal(v.lanes(api), 4, '1001 ms: gone');
    clock.t += 60_000;
    await put(a, record(a, { [api]: 2 }, 1000));
    await until(v, api, 6, 'a new heartbeat brings it back');
  });

  test('each peer has its own timeout; without one it is 30 s', async () => {
    const api = unique('api');
    const [quick, slow, unset] = [unique('peer'), unique('peer'), unique('peer')];
    const clock = new Clock();
    const v = view(new Map([[api, 1]]), clock);
    await put(quick, record(quick, { [api]: 2 }, 500));
    await put(slow, record(slow, { [api]: 10 }, 5000));
    await put(unset, record(unset, { [api]: 100 }, null));
    await until(v, api, 113, 'all three');
    clock.t += 501;
    assert.equal(v.lanes(api), 111, 'the 500 ms one gone');
    clock.t += 4500;
    assert.equal(v.lanes(api), 101, 'the 5 s one gone');
    clock.t = clock.t - 5001 + 30_000;
    assert.equal(v.lanes(api), 101, 'the one without a timeout: live at 30 s');
    clock.t += 1;
    assert.equal(v.lanes(api), 1, 'gone after 30 s');
  });

  test('ignores an undecodable entry, and one for a known peer keeps its last good figures', async () => {
    const api = unique('api');
    const [bad, a] = [unique('peer'), unique('peer')];
    const v = view(new Map([[api, 4]]), new Clock());
    await put(bad, new TextEncoder().encode('{"lanes": {"' + api + '": 7'));
    await put(a, record(a, { [api]: 3 }));
    await until(v, api, 7, 'the good peer written after the bad entry');
    await put(a, new Uint8Array([0xff, 0xfe, 0x7b]));
    const s = unique('sentinel');
    await put(s, record(s, { [api]: 1 }));
    await until(v, api, 8, 'the sentinel: the garbled heartbeat changed nothing');
    await ctx.daemons.delete(bad);
  });

  test('a JSON entry that is not an object (a number, a string, an array) is ignored, and later entries still count', async () => {
    const api = unique('api');
    const odd = [unique('peer'), unique('peer'), unique('peer')];
    const v = view(new Map([[api, 4]]), new Clock());
    await put(odd[0]!, 42);
    await put(odd[1]!, 'a string');
    await put(odd[2]!, [1, 2]);
    const s = unique('sentinel');
    await put(s, record(s, { [api]: 1 }));
    await until(v, api, 5, 'the sentinel written after them');
    for (const k of odd) await ctx.daemons.delete(k);
  });

  test(
    'a JSON null entry is ignored, and later entries still count',
    async () => {
      const api = unique('api');
      const odd = unique('peer');
      try {
        const v = view(new Map([[api, 4]]), new Clock());
        await put(odd, null);
        const s = unique('sentinel');
        await put(s, record(s, { [api]: 1 }));
        await waitUntil('the sentinel written after it', () => v.lanes(api) === 5, { timeoutMs: 3000, intervalMs: 10, detail: () => logged.join('').slice(0, 500) });
        assert.deepEqual(logged, [], 'the watch never failed');
      } finally {
        // The bucket is shared with the next tests: stop this view, then remove the entry, then forget its warnings.
        await Promise.all(views.splice(0).map((w) => w.stop()));
        await ctx.daemons.delete(odd);
        logged.splice(0);
      }
    },
  );

  test('stop() is idempotent: twice in a row, twice at once, before start, and nothing is applied after it', async () => {
    const api = unique('api');
    const clock = new Clock();
    const never = view(new Map(), clock, false);
    await never.stop();
    await never.stop();
    const v = view(new Map([[api, 4]]), clock);
    const witness = view(new Map([[api, 4]]), clock);
    const a = unique('peer');
    await put(a, record(a, { [api]: 3 }));
    await until(v, api, 7, 'the peer');
    await Promise.all([v.stop(), v.stop()]);
    await v.stop();
    const b = unique('peer');
    await put(b, record(b, { [api]: 2 }));
    await until(witness, api, 9, 'a view still running sees the next peer');
    assert.equal(v.lanes(api), 7, 'the stopped view does not');
  });

  test('a process that starts and stops views (at once, after the first entries, twice) exits by itself', async () => {
    const api = unique('api');
    const a = unique('peer');
    await put(a, record(a, { [api]: 3 }));
    const script = `
      import { connect } from '@nats-io/transport-node';
      import pino from 'pino';
      import { FleetView } from './src/daemon/fleet-view.ts';
      import { openContext } from './src/fleet/context.ts';
      import { waitUntil } from './test/helpers/wait.ts';
      const [url, api] = process.argv.slice(1);
      const nc = await connect({ servers: url });
      const ctx = await openContext(nc);
      const log = pino({ level: 'silent' });
      const at_once = new FleetView(ctx.daemons, log, 'child', () => 2);
      at_once.start();
      await at_once.stop();
      const v = new FleetView(ctx.daemons, log, 'child', () => 2);
      v.start();
      await waitUntil('the peer', () => v.lanes(api) === 5, { timeoutMs: 10000 });
      await Promise.all([v.stop(), v.stop()]);
      await v.stop();
      await nc.close();
      console.log('lanes', v.lanes(api));
    `;
    const child = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script, server.url, api], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (out += d.toString()));
    const code = await new Promise<number | string>((resolve) => {
      const t = setTimeout(() => {
        child.kill('SIGKILL');
        resolve('still running 30 s later');
      }, 30_000);
      child.once('exit', (c) => {
        clearTimeout(t);
        resolve(c ?? 'killed');
      });
    });
    assert.equal(code, 0, out.slice(-2000));
    assert.equal(out.trim(), 'lanes 5');
  });
});
