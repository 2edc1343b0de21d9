/** `jetbatch`: the daemon (`start`) and the client commands. */
import { Command, CommanderError } from 'commander';
import { JetbatchError } from '../errors.js';
import { registerClientCommands } from './commands.js';
import { exitCodeFor } from './common.js';
import { registerPut } from './put.js';
import { registerStart } from './start.js';
import { registerUi } from './ui.js';
import { packageVersion } from './version.js';

// `jetbatch results JOB | head` closes the pipe early: that is not an error.
process.stdout.on('error', (err: NodeJS.ErrnoException) => {
  if (err.code === 'EPIPE') process.exit(0);
  throw err;
});

let exitCode = 0;
const program = new Command('jetbatch')
  .description('Distributed, fault-tolerant batch jobs on NATS JetStream and worker threads')
  .version(packageVersion(), '-V, --version', 'print the jetbatch version')
  .showHelpAfterError()
  .exitOverride();

registerStart(program);
registerClientCommands(program, (code) => (exitCode = code));
registerUi(program);
registerPut(program);

try {
  await program.parseAsync(process.argv);
  process.exitCode = exitCode;
} catch (err) {
  if (err instanceof CommanderError) {
    process.exitCode = err.exitCode === 0 ? 0 : 2;
  } else {
    const message = err instanceof JetbatchError ? `${err.code}: ${err.message}` : (err as Error).stack ?? String(err);
    process.stderr.write(`jetbatch: ${message}\n`);
    if (err instanceof JetbatchError) for (const d of err.details) process.stderr.write(`  - ${d}\n`);
    process.exitCode = exitCodeFor(err);
  }
}
