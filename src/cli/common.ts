/** Options every CLI command shares (server and credentials), and output helpers. */
import { Command, Option } from 'commander';
import { JetbatchClient } from '../client/client.js';
import type { NatsOptions } from '../fleet/connect.js';
import { ErrorCodes, JetbatchError } from '../errors.js';

export interface ConnectionFlags {
  server?: string;
  user?: string;
  password?: string;
  token?: string;
  nkeySeedFile?: string;
  creds?: string;
  tlsCa?: string;
  tlsCert?: string;
  tlsKey?: string;
}

/** `natsTokenFlag`: the NATS token's flag, `--nats-token` where `--token` means something else (`jetbatch ui`). */
export function withConnectionOptions(cmd: Command, natsTokenFlag: '--token' | '--nats-token' = '--token'): Command {
  return cmd
    .addOption(new Option('--server <url>', 'NATS server URL (comma-separate several)').env('NATS_URL').default('nats://127.0.0.1:4222'))
    .addOption(new Option('--user <name>', 'NATS user').env('NATS_USER'))
    .addOption(new Option('--password <pass>', 'NATS password').env('NATS_PASSWORD'))
    .addOption(new Option(`${natsTokenFlag} <token>`, 'NATS auth token').env('NATS_TOKEN'))
    .addOption(new Option('--nkey-seed-file <path>', 'file holding an NKey seed'))
    .addOption(new Option('--creds <path>', 'NATS .creds file').env('NATS_CREDS'))
    .addOption(new Option('--tls-ca <path>', 'CA certificate to verify the server'))
    .addOption(new Option('--tls-cert <path>', 'client certificate (mutual TLS)'))
    .addOption(new Option('--tls-key <path>', 'client key (mutual TLS)'));
}

export function natsOptionsOf(flags: ConnectionFlags): NatsOptions {
  const opts: NatsOptions = { servers: (flags.server ?? 'nats://127.0.0.1:4222').split(',').map((s) => s.trim()).filter(Boolean), name: 'jetbatch-cli' };
  if (flags.user !== undefined) opts.user = flags.user;
  if (flags.password !== undefined) opts.pass = flags.password;
  if (flags.token !== undefined) opts.token = flags.token;
  if (flags.nkeySeedFile !== undefined) opts.nkey_seed_file = flags.nkeySeedFile;
  if (flags.creds !== undefined) opts.creds_file = flags.creds;
  if (flags.tlsCa !== undefined || flags.tlsCert !== undefined || flags.tlsKey !== undefined) {
    opts.tls = {};
    if (flags.tlsCa !== undefined) opts.tls.ca = flags.tlsCa;
    if (flags.tlsCert !== undefined) opts.tls.cert = flags.tlsCert;
    if (flags.tlsKey !== undefined) opts.tls.key = flags.tlsKey;
  }
  return opts;
}

export async function withClient<T>(flags: ConnectionFlags, fn: (client: JetbatchClient) => Promise<T>): Promise<T> {
  const client = await JetbatchClient.connect(natsOptionsOf(flags));
  try {
    return await fn(client);
  } finally {
    await client.close();
  }
}

export function printJson(value: unknown): void {
  process.stdout.write(JSON.stringify(value, null, 2) + '\n');
}

/** Exit codes: 0 ok, 1 the job did not succeed, 2 bad input, 3 cannot reach NATS/jetbatch, 4 other errors. */
export const ExitCodes = { ok: 0, jobFailed: 1, badInput: 2, unreachable: 3, internal: 4 } as const;

export function exitCodeFor(err: unknown): number {
  if (err instanceof JetbatchError) {
    const usage: readonly string[] = [ErrorCodes.INVALID_SUBMISSION, ErrorCodes.INVALID_REQUEST, ErrorCodes.UNKNOWN_API, ErrorCodes.JOB_NOT_FOUND, ErrorCodes.JOB_CONFLICT, ErrorCodes.PAYLOAD_TOO_LARGE, ErrorCodes.INVALID_CONFIG, ErrorCodes.INVALID_STORE_URL, ErrorCodes.STORE_NOT_FOUND, ErrorCodes.PER_ITEM_UNAVAILABLE];
    if (usage.includes(err.code)) {
      return ExitCodes.badInput;
    }
    if (err.code === ErrorCodes.CONNECTION_FAILED || err.code === ErrorCodes.TIMEOUT) return ExitCodes.unreachable;
    if (err.code === ErrorCodes.JOB_ENDED) return ExitCodes.jobFailed;
  }
  return ExitCodes.internal;
}

export function intArg(name: string): (value: string) => number {
  return (value) => {
    const n = Number(value);
    if (!Number.isInteger(n)) throw new JetbatchError(ErrorCodes.INVALID_SUBMISSION, `${name} must be an integer, got "${value}"`);
    return n;
  };
}

export function numberArg(name: string): (value: string) => number {
  return (value) => {
    const n = Number(value);
    if (!Number.isFinite(n)) throw new JetbatchError(ErrorCodes.INVALID_SUBMISSION, `${name} must be a number, got "${value}"`);
    return n;
  };
}
