/**
 * Starts a local S3-compatible server (s3rver, a devDependency) in a child process on a free loopback port with a
 * temp directory, and gives the environment a jetbatch process needs to reach it. Never the internet.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { ROOT } from './daemon.js';

export class S3Server {
  readonly endpoint: string;
  readonly #proc: ChildProcess;
  readonly #dir: string;

  private constructor(endpoint: string, proc: ChildProcess, dir: string) {
    this.endpoint = endpoint;
    this.#proc = proc;
    this.#dir = dir;
  }

  /** A server holding the (empty) `buckets`. s3rver accepts any credentials. */
  static async start(buckets: readonly string[]): Promise<S3Server> {
    const dir = mkdtempSync(join(tmpdir(), 'jetbatch-s3-'));
    const proc = spawn(process.execPath, [join(ROOT, 'test', 'fixtures', 's3-server', 'main.mjs'), dir, ...buckets], {
      cwd: ROOT,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stderr = '';
    proc.stderr?.on('data', (d: Buffer) => (stderr += d.toString()));
    try {
      const port = await new Promise<number>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`s3rver did not start within 20 s: ${stderr}`)), 20_000);
        proc.once('exit', (code) => reject(new Error(`s3rver exited at start (${code}): ${stderr}`)));
        createInterface({ input: proc.stdout! }).once('line', (line) => {
          clearTimeout(timer);
          resolve((JSON.parse(line) as { port: number }).port);
        });
      });
      return new S3Server(`http://127.0.0.1:${port}`, proc, dir);
    } catch (err) {
      proc.kill('SIGKILL');
      rmSync(dir, { recursive: true, force: true });
      throw err;
    }
  }

  /** What a jetbatch process (a child, or S3Settings in this one) needs to use this server. */
  get env(): Record<string, string> {
    return { AWS_ENDPOINT_URL: this.endpoint, AWS_REGION: 'us-east-1', AWS_ACCESS_KEY_ID: 'S3RVER', AWS_SECRET_ACCESS_KEY: 'S3RVER' };
  }

  async dispose(): Promise<void> {
    const p = this.#proc;
    if (p.exitCode === null && p.signalCode === null) {
      await new Promise<void>((resolve) => {
        p.once('exit', () => resolve());
        p.kill('SIGKILL');
      });
    }
    rmSync(this.#dir, { recursive: true, force: true });
  }
}
