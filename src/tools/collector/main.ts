#!/usr/bin/env node
/**
 * Runs the test collector as its own process:
 *   node dist/src/tools/collector/main.js [--port N] [--keep records|ids|none]
 *        [--tls-cert F --tls-key F [--client-ca F]]
 * Prints one line "listening <url>" on stdout when ready; stops on SIGTERM/SIGINT.
 */
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { errorMessage } from '../../lib';
import { GratiaCollector, type KeepMode } from './server';

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      port: { type: 'string', default: '0' },
      keep: { type: 'string', default: 'records' },
      'tls-cert': { type: 'string' },
      'tls-key': { type: 'string' },
      'client-ca': { type: 'string' },
    },
  });
  const tls =
    values['tls-cert'] && values['tls-key']
      ? {
          cert: readFileSync(values['tls-cert']),
          key: readFileSync(values['tls-key']),
          clientCa: values['client-ca'] ? readFileSync(values['client-ca']) : undefined,
        }
      : undefined;
  const collector = new GratiaCollector({ port: Number(values.port), keep: values.keep as KeepMode, tls });
  const url = await collector.start();
  process.stdout.write(`listening ${url}\n`);
  const stop = () => void collector.stop().then(() => process.exit(0));
  process.on('SIGTERM', stop).on('SIGINT', stop);
}

main().catch((err) => {
  process.stderr.write(`collector: ${errorMessage(err)}\n`);
  process.exit(1);
});
