/** The daemon's logger: pino JSON lines on stdout (journald under systemd), or pino-pretty with --pretty. */
import pino, { type Logger } from 'pino';

export function createLogger(level: string, base: Record<string, unknown>): Logger {
  return pino({
    level,
    base,
    redact: { paths: ['pass', 'token', 'nats.pass', 'nats.token', '*.pass', '*.token'], censor: '[redacted]' },
  });
}
