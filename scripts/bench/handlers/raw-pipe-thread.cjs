// Entry of a raw pipe reference thread (../raw-pipe.ts). tsx's loader does not apply to a worker's entry file or
// to import() in the worker here, but its require hook does, as for Piscina's tasks: the TypeScript is required.
require('./raw-pipe-thread.ts');
