/**
 * One Python process of a worker thread (src/python/jetbatch/_runner.py): spawning it, its frame channel, its
 * output, and its death. A reply answers the oldest outstanding request: the child handles requests in order, so
 * the runtime may write several ahead (a task's next batches) and every frame that is not a reply belongs to the
 * oldest outstanding request, its `owner`.
 *
 * No orphans: the child is the leader of its own process group (so a terminal's Ctrl-C reaches the daemon, not the
 * handler, and a kill takes the handler's own subprocesses too); it asks the kernel to SIGKILL it when the thread
 * that spawned it ends (PR_SET_PDEATHSIG: Piscina terminating the thread, the daemon dying); and it exits when its
 * request pipe closes.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import type { Readable, Writable } from 'node:stream';
import { encodeFrame, FrameReader, type Frame } from './frames.js';

export interface ChildOptions {
  python: string;
  projectDir: string;
  /** The module path of the `jetbatch` package (src/python). */
  modulePath: string;
  env: Record<string, string>;
  /** Given to the runner as its one argument (JSON). */
  settings: Record<string, unknown>;
  /** A line the child wrote on stdout or stderr (print(), warnings, a C library's messages). */
  onOutput(stream: 'stdout' | 'stderr', line: string): void;
  /** A frame that is not a reply (log records, client calls). */
  onFrame(frame: Frame): void;
}

/** Why the child is gone: it could not start, exited, or was killed. */
export class ChildGone extends Error {
  constructor(
    message: string,
    /** True when the process never ran the runner (missing interpreter, runner failed before `ready`). */
    readonly beforeReady: boolean,
    readonly exitCode: number | null,
    readonly signal: NodeJS.Signals | null,
  ) {
    super(message);
    this.name = 'PythonProcessError';
  }
}

/** Lines of stderr kept to explain a death. */
const STDERR_TAIL = 20;
/** A line without a newline is cut here (the log guard drops oversized lines anyway). */
const MAX_OUTPUT_LINE = 1024 * 1024;
/** After the process exits, frames it wrote just before are still read for this long. */
const DRAIN_MS = 200;

export class PythonChild<Owner = unknown> {
  readonly #proc: ChildProcess;
  readonly #opts: ChildOptions;
  readonly #out: Writable;
  readonly #pending: Array<{ resolve: (f: Frame) => void; reject: (e: ChildGone) => void; owner: Owner | undefined }> = [];
  readonly #stderrTail: string[] = [];
  readonly #reader = new FrameReader();
  #ready = false;
  #gone: ChildGone | undefined;
  #killedByUs = false;
  #corked = false;

  constructor(opts: ChildOptions) {
    this.#opts = opts;
    const pythonPath = opts.env.PYTHONPATH ? `${opts.modulePath}:${opts.env.PYTHONPATH}` : opts.modulePath;
    this.#proc = spawn(opts.python, ['-m', 'jetbatch._runner', JSON.stringify(opts.settings)], {
      cwd: opts.projectDir,
      env: { ...opts.env, PYTHONPATH: pythonPath, PYTHONUNBUFFERED: '1' },
      stdio: ['ignore', 'pipe', 'pipe', 'pipe', 'pipe'],
      detached: true,
    });
    this.#out = this.#proc.stdio[3] as Writable;
    const frames = this.#proc.stdio[4] as Readable;
    this.#out.on('error', () => undefined); // EPIPE when the child is gone: its exit explains it
    frames.on('data', (chunk: Buffer) => this.#onData(chunk));
    frames.on('error', () => undefined);
    this.#lines(this.#proc.stdout!, 'stdout');
    this.#lines(this.#proc.stderr!, 'stderr');
    this.#proc.on('error', (err: NodeJS.ErrnoException) => {
      const why = err.code === 'ENOENT'
        ? `the Python interpreter "${opts.python}" was not found (apis[].python; default python3 on PATH)`
        : `cannot start the Python interpreter "${opts.python}": ${err.message}`;
      this.#fail(new ChildGone(why, true, null, null));
    });
    this.#proc.on('exit', (code, signal) => {
      const settle = (): void => this.#fail(this.#exitError(code, signal));
      // Frames written just before the exit may still be in the pipe: read them first (bounded).
      if (frames.readableEnded || frames.destroyed) settle();
      else {
        const t = setTimeout(settle, DRAIN_MS);
        frames.once('close', () => {
          clearTimeout(t);
          settle();
        });
      }
    });
  }

  get pid(): number | undefined {
    return this.#proc.pid;
  }

  get alive(): boolean {
    return this.#gone === undefined;
  }

  /**
   * Sends a request; resolves with its reply frame, rejects with ChildGone if the process goes first. `owner` is
   * `current` while the child works on this request.
   */
  request(header: readonly unknown[], tail?: Uint8Array, owner?: Owner): Promise<Frame> {
    if (this.#gone !== undefined) return Promise.reject(this.#gone);
    return new Promise<Frame>((resolve, reject) => {
      this.#pending.push({ resolve, reject, owner });
      this.send(header, tail);
    });
  }

  /**
   * Sends one request that the child answers with one reply per owner, in order (a task's batches in one frame).
   * `settle(i, reply)` is called for each, or with the ChildGone for those left when the process goes; no promise
   * per reply.
   */
  requestEach(header: readonly unknown[], tail: Uint8Array | undefined, owners: readonly Owner[], settle: (index: number, reply: Frame | ChildGone) => void): void {
    if (this.#gone !== undefined) {
      for (let i = 0; i < owners.length; i++) settle(i, this.#gone);
      return;
    }
    for (let i = 0; i < owners.length; i++) {
      const index = i;
      this.#pending.push({ resolve: (f) => settle(index, f), reject: (e) => settle(index, e), owner: owners[i] });
    }
    this.send(header, tail);
  }

  /** The owner of the request the child is working on (the oldest unanswered), if any. */
  get current(): Owner | undefined {
    return this.#pending[0]?.owner;
  }

  /** Sends a frame that has no reply (dropping a job's handler, answering a client call). */
  send(header: readonly unknown[], tail?: Uint8Array): void {
    if (this.#gone !== undefined) return;
    // Frames written in the same tick (a task's batches written ahead) leave in one writev.
    if (!this.#corked) {
      this.#corked = true;
      this.#out.cork();
      process.nextTick(() => {
        this.#corked = false;
        this.#out.uncork();
      });
    }
    for (const chunk of encodeFrame(header, tail)) this.#out.write(chunk);
  }

  /** SIGKILL to the process group (the handler's own subprocesses too). Idempotent. */
  kill(): void {
    if (this.#proc.exitCode !== null || this.#proc.signalCode !== null || this.#proc.pid === undefined) return;
    this.#killedByUs = true;
    try {
      process.kill(-this.#proc.pid, 'SIGKILL');
    } catch {
      this.#proc.kill('SIGKILL');
    }
  }

  #onData(chunk: Buffer): void {
    let frames: Frame[];
    try {
      frames = this.#reader.push(chunk);
    } catch (err) {
      this.#fail(new ChildGone(`the Python process broke the frame protocol: ${(err as Error).message}`, !this.#ready, null, null));
      this.kill();
      return;
    }
    for (const frame of frames) {
      const kind = frame.header[0];
      if (kind === 'ready') this.#ready = true;
      else if (kind === 'ok' || kind === 'error') this.#pending.shift()?.resolve(frame);
      else this.#opts.onFrame(frame);
    }
  }

  #lines(stream: Readable, name: 'stdout' | 'stderr'): void {
    let partial = '';
    stream.setEncoding('utf8');
    stream.on('data', (text: string) => {
      partial += text;
      let nl: number;
      while ((nl = partial.indexOf('\n')) >= 0) {
        this.#line(name, partial.slice(0, nl));
        partial = partial.slice(nl + 1);
      }
      if (partial.length > MAX_OUTPUT_LINE) {
        this.#line(name, partial);
        partial = '';
      }
    });
    stream.on('end', () => {
      if (partial !== '') this.#line(name, partial);
      partial = '';
    });
    stream.on('error', () => undefined);
  }

  #line(name: 'stdout' | 'stderr', line: string): void {
    const text = line.endsWith('\r') ? line.slice(0, -1) : line;
    if (name === 'stderr') {
      this.#stderrTail.push(text);
      if (this.#stderrTail.length > STDERR_TAIL) this.#stderrTail.shift();
    }
    this.#opts.onOutput(name, text);
  }

  #exitError(code: number | null, signal: NodeJS.Signals | null): ChildGone {
    const how = signal !== null
      ? `was killed by ${signal}${this.#killedByUs ? '' : signal === 'SIGKILL' ? ' (the kernel\'s OOM killer, or another process)' : ''}`
      : `exited with code ${code}`;
    const tail = this.#stderrTail.length > 0 ? `; its last stderr lines:\n${this.#stderrTail.join('\n')}` : '';
    return new ChildGone(`the Python process (pid ${this.#proc.pid}) ${how}${tail}`, !this.#ready, code, signal);
  }

  #fail(err: ChildGone): void {
    if (this.#gone !== undefined) return;
    this.#gone = err;
    for (const p of this.#pending.splice(0)) p.reject(err);
    this.kill();
  }
}
