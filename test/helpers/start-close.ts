/**
 * Fixture script: starts and closes a daemon `argv[3]` times against the NATS server at `argv[2]`, then returns.
 * The process must then exit on its own: nothing a closed daemon started may keep it alive.
 */
import { join } from 'node:path';
import { FIXTURES, startDaemon } from './daemon.js';

const [url, times] = process.argv.slice(2);
for (let i = 0; i < Number(times ?? 1); i++) {
  const daemon = await startDaemon(url!, [{ name: 'sizes', project: join(FIXTURES, 'sizes'), threads: 2 }]);
  await daemon.close();
}
