/** `jetbatch start`: runs the daemon until SIGTERM/SIGINT (graceful) or a second signal (forced). */
import { Command, Option } from 'commander';
import { Daemon } from '../daemon/daemon.js';
import { loadConfig } from '../daemon/config.js';

export function registerStart(program: Command): void {
  program
    .command('start')
    .description('run the daemon: pull and run batches of the APIs listed in the config')
    .requiredOption('--config <file>', 'daemon config (YAML)')
    .addOption(new Option('--server <url>', 'NATS server URL(s), comma-separated; overrides nats.servers'))
    .option('--pretty', 'human-readable logs (pino-pretty) instead of JSON lines')
    .action(async (flags: { config: string; server?: string; pretty?: boolean }) => {
      const overrides = flags.server === undefined ? {} : { servers: flags.server.split(',').map((s) => s.trim()) };
      const options = await loadConfig(flags.config, overrides);
      const daemon = await Daemon.start(options, { pretty: flags.pretty === true });
      // SIGHUP re-reads the config file; a bad file is reported and the running configuration kept.
      process.on('SIGHUP', () => {
        loadConfig(flags.config, overrides)
          .then((next) => daemon.reload(next))
          .catch((err: unknown) => daemon.log.error({ err }, 'reload failed; keeping the running configuration'));
      });
      await new Promise<void>((resolve) => {
        let signals = 0;
        const onSignal = (sig: NodeJS.Signals): void => {
          signals++;
          if (signals > 1) {
            daemon.log.warn({ signal: sig }, 'second signal: exiting now');
            process.exit(130);
          }
          // Watchdog: a shutdown that stalls past the grace period plus a margin exits non-zero.
          setTimeout(() => process.exit(1), options.shutdownGraceMs + 15_000).unref();
          daemon.close().then(resolve, resolve);
        };
        process.on('SIGTERM', onSignal);
        process.on('SIGINT', onSignal);
      });
    });
}
