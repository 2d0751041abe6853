#!/usr/bin/env node
/**
 * A null collector for the diagnosis only: reads each request body and answers 200 "OK"
 * without looking at it. Running the probe against it shows how fast the probe and
 * PostgreSQL go when the collector costs (almost) nothing; it is not a Gratia collector.
 * Prints "listening <url>" like src/tools/collector/main.ts; GET /_control/stats gives counts.
 */
import { appendFileSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';

// --record FILE [--record-max N]: append the first N request bodies to FILE, one per line
// (urlencoded bodies hold no newline): the exact bundles the probe sends, for the collector
// acceptance baseline.
const argv = process.argv.slice(2);
const recordFile = argv.includes('--record') ? argv[argv.indexOf('--record') + 1] : undefined;
let recordLeft = argv.includes('--record-max') ? Number(argv[argv.indexOf('--record-max') + 1]) : Infinity;

let requests = 0;
let bytes = 0;
let lastAcceptedAt: number | null = null;
let recordsAccepted = 0;

const server = createServer((req, res) => {
  if (req.url?.startsWith('/_control/stats')) {
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ requests, bytes, recordsAccepted, lastAcceptedAt }));
    return;
  }
  if (req.url?.startsWith('/_control/reset')) {
    requests = bytes = recordsAccepted = 0;
    lastAcceptedAt = null;
    req.resume();
    req.on('end', () => res.end('{"ok":true}'));
    return;
  }
  let size = 0;
  let tail = '';
  let count = 0;
  const chunks: Buffer[] | null = recordFile && recordLeft > 0 ? [] : null;
  req.on('data', (chunk: Buffer) => {
    size += chunk.length;
    chunks?.push(chunk);
    // Count records cheaply: urlencoded "</JobUsageRecord>" is "%3C%2FJobUsageRecord%3E".
    const text = tail + chunk.toString('latin1');
    let at = 0;
    for (;;) {
      const i = text.indexOf('%2FJobUsageRecord%3E', at);
      if (i < 0) break;
      count++;
      at = i + 1;
    }
    tail = text.slice(-19); // shorter than the pattern: no match is counted twice
  });
  req.on('end', () => {
    if (chunks && recordFile && recordLeft-- > 0 && Buffer.concat(chunks).includes('command=multiupdate')) {
      appendFileSync(recordFile, Buffer.concat([...chunks, Buffer.from('\n')]));
    }
    requests++;
    bytes += size;
    recordsAccepted += count;
    lastAcceptedAt = Date.now();
    res.writeHead(200, { 'content-type': 'text/plain; charset=utf-8' });
    res.end('OK');
  });
});
server.keepAliveTimeout = 60_000;
server.listen(0, '127.0.0.1', () => {
  process.stdout.write(`listening http://127.0.0.1:${(server.address() as AddressInfo).port}\n`);
});
const stop = () => server.close(() => process.exit(0));
process.on('SIGTERM', stop).on('SIGINT', stop);
