/**
 * `jetbatch ui`: serves the fleet's web page (src/ui/) until SIGTERM/SIGINT. Its `--token` is the page's token
 * (stop and replay, and every request off loopback); the NATS token is `--nats-token` here.
 */
import { Command, Option } from 'commander';
import { connectNats } from '../fleet/connect.js';
import { DEFAULT_LISTEN, uiOptions } from '../ui/options.js';
import { UiServer, type UiLog } from '../ui/server.js';
import { natsOptionsOf, withConnectionOptions, type ConnectionFlags } from './common.js';

interface UiCommandFlags extends Omit<ConnectionFlags, 'token'> {
  listen: string;
  token?: string;
  natsToken?: string;
  allowHost?: string[];
}

/** Warnings to stderr, the same one at most every 30 s (a NATS outage would repeat it every second). */
function stderrLog(): UiLog {
  const last = new Map<string, number>();
  return {
    warn(obj, msg) {
      const text = `${msg}: ${obj.err instanceof Error ? obj.err.message : String(obj.err)}`;
      const now = Date.now();
      if (now - (last.get(text) ?? 0) < 30_000) return;
      last.set(text, now);
      process.stderr.write(`jetbatch ui: ${text}\n`);
    },
  };
}

export function registerUi(program: Command): void {
  withConnectionOptions(
    program
      .command('ui')
      .description('serve a web page of the fleet: jobs with live progress, dead letters, results, daemons; stop and replay with a token')
      .addOption(new Option('--listen <host:port>', 'address to serve on; off loopback it needs --token').default(DEFAULT_LISTEN))
      .addOption(new Option('--token <token>', 'the page\'s token: needed for stop and replay, and for every request off loopback (at least 16 characters)').env('JETBATCH_UI_TOKEN'))
      .addOption(new Option('--allow-host <names...>', 'Host names to answer on a loopback address besides localhost (a reverse proxy\'s public name)')),
    '--nats-token',
  ).action(async (flags: UiCommandFlags) => {
    // Checked before connecting: a refused --listen never touches NATS.
    const options = uiOptions({ listen: flags.listen, ...(flags.token !== undefined ? { token: flags.token } : {}), ...(flags.allowHost !== undefined ? { allowHost: flags.allowHost } : {}) });
    const { natsToken, token: _uiToken, ...connection } = flags;
    const nc = await connectNats({ ...natsOptionsOf({ ...connection, ...(natsToken !== undefined ? { token: natsToken } : {}) }), name: 'jetbatch-ui' }, { reconnectForever: true });
    let ui: UiServer;
    try {
      ui = await UiServer.start(nc, { ...options, log: stderrLog() });
    } catch (err) {
      await nc.close();
      throw err;
    }
    const mode = options.token === null ? 'read-only (start with --token to enable stop and replay)' : 'stop and replay need the token';
    process.stdout.write(`jetbatch ui: serving ${ui.url}/jobs — ${mode}\n`);
    await new Promise<void>((resolve) => {
      let signals = 0;
      const onSignal = (): void => {
        if (++signals > 1) process.exit(130);
        setTimeout(() => process.exit(1), 15_000).unref(); // A stalled shutdown still ends.
        ui.close()
          .then(() => nc.drain())
          .catch(() => nc.close())
          .then(resolve, resolve);
      };
      process.on('SIGTERM', onSignal);
      process.on('SIGINT', onSignal);
    });
  });
}
