/** A `jetbatch ui` server in-process and headless Chromium (Debian's, driven by playwright-core) for the UI tests. */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { chromium, type Browser } from 'playwright-core';
import { uiOptions, type UiFlags } from '../../src/ui/options.js';
import { UiServer } from '../../src/ui/server.js';

/** The page's token in tests (long enough for the 16-character rule). */
export const UI_TOKEN = 'test-ui-token-0123456789abcdef';

export async function startUi(natsUrl: string, flags: UiFlags = { listen: '127.0.0.1:0', token: UI_TOKEN }): Promise<{ ui: UiServer; nc: NatsConnection; close(): Promise<void> }> {
  const nc = await connect({ servers: natsUrl, name: 'jetbatch-ui-test' });
  const warnings: string[] = [];
  const ui = await UiServer.start(nc, { ...uiOptions(flags), log: { warn: (o, msg) => warnings.push(`${msg}: ${String(o.err)}`) } });
  await ui.ready;
  return {
    ui,
    nc,
    async close() {
      await ui.close();
      await nc.close();
    },
  };
}

export function chromiumPath(): string {
  return process.env.JETBATCH_TEST_CHROMIUM ?? '/usr/bin/chromium';
}

/** Headless Chromium as root on a machine without a GPU or a network beyond loopback; a fresh profile each launch. */
export function launchChromium(): Promise<Browser> {
  return chromium.launch({
    executablePath: chromiumPath(),
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--disable-dev-shm-usage'],
    // playwright-core makes a fresh --user-data-dir for every launch and removes it on close.
    downloadsPath: mkdtempSync(join(tmpdir(), 'jetbatch-ui-dl-')),
  });
}
