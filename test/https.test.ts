/**
 * HTTPS collectors: server verification against a site CA, client certificates (Gratia's
 * UseSSL / CertificateFile / KeyFile), and an HTTP(S) proxy from the environment. The
 * certificates are made here with openssl; the collector is a real HTTPS server process.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { connect, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { startCollector, type CollectorProcess } from './helpers/collector';
import { createBillingDatabase, type BillingDatabase } from './helpers/database';
import { checkDelivery } from './helpers/expectations';
import { pollOnce } from './helpers/probe';
import { queueDepth, simulate, write } from './helpers/scenario';

const dir = mkdtempSync(join(tmpdir(), 'probe-tls-'));
const file = (name: string) => join(dir, name);

function openssl(...args: string[]): void {
  execFileSync('openssl', args, { stdio: 'ignore' });
}

/** A site CA, a collector certificate for 127.0.0.1, a host (client) certificate, and a self-signed rogue one. */
function makeCertificates(): void {
  openssl('req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', file('ca.key'), '-out', file('ca.pem'), '-days', '2', '-subj', '/CN=Test Site CA');
  const sign = (name: string, subject: string, ext: string, selfSigned = false) => {
    openssl('req', '-newkey', 'rsa:2048', '-nodes', '-keyout', file(`${name}.key`), '-out', file(`${name}.csr`), '-subj', subject);
    writeFileSync(file(`${name}.ext`), ext + '\n');
    if (selfSigned) openssl('x509', '-req', '-in', file(`${name}.csr`), '-signkey', file(`${name}.key`), '-out', file(`${name}.pem`), '-days', '2', '-extfile', file(`${name}.ext`));
    else openssl('x509', '-req', '-in', file(`${name}.csr`), '-CA', file('ca.pem'), '-CAkey', file('ca.key'), '-CAcreateserial', '-out', file(`${name}.pem`), '-days', '2', '-extfile', file(`${name}.ext`));
  };
  sign('server', '/CN=127.0.0.1', 'subjectAltName=IP:127.0.0.1,DNS:localhost');
  sign('client', '/DC=org/DC=example/CN=dcache.example.org', 'extendedKeyUsage=clientAuth');
  sign('rogue', '/CN=rogue', 'extendedKeyUsage=clientAuth', true);
}

/** A CONNECT proxy that counts the tunnels it opened. */
async function startConnectProxy(): Promise<{ url: string; tunnels: string[]; close(): Promise<void> }> {
  const tunnels: string[] = [];
  const server: Server = createServer((_req, res) => res.writeHead(405).end());
  server.on('connect', (req, socket, head) => {
    tunnels.push(req.url ?? '');
    const [host, port] = (req.url ?? '').split(':');
    const upstream = connect(Number(port), host!, () => {
      socket.write('HTTP/1.1 200 Connection Established\r\n\r\n');
      upstream.write(head);
      upstream.pipe(socket);
      socket.pipe(upstream);
    });
    upstream.on('error', () => socket.destroy());
    socket.on('error', () => upstream.destroy());
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    tunnels,
    close: () => new Promise((resolve) => {
      server.closeAllConnections();
      server.close(() => resolve());
    }),
  };
}

describe('an HTTPS collector that requires client certificates', () => {
  let db: BillingDatabase;
  let collector: CollectorProcess;
  before(async () => {
    makeCertificates();
    db = await createBillingDatabase('modern');
    collector = await startCollector(['--tls-cert', file('server.pem'), '--tls-key', file('server.key'), '--client-ca', file('ca.pem')], {
      ca: readFileSync(file('ca.pem')),
      cert: readFileSync(file('client.pem')),
      key: readFileSync(file('client.key')),
    });
  });
  after(async () => {
    await collector.stop();
    await db.drop();
  });

  const tls = ['--ca-file', file('ca.pem'), '--cert-file', file('client.pem'), '--key-file', file('client.key')];
  const quick = ['--retry-budget', '1', '--retry-base-ms', '50', '--door-grace', '0'];

  it('is refused without a client certificate: the rows stay queued', async () => {
    const sim = simulate(20, 51);
    await write(db, sim);
    const result = await pollOnce({ dbUrl: db.url, collectorUrl: collector.url, extraArgs: ['--ca-file', file('ca.pem'), ...quick] });
    assert.equal(result.code, 1);
    assert.ok((await queueDepth(db)) > 0);
    assert.equal((await collector.stats()).recordsAccepted, 0);
  });

  it('is refused with a certificate the collector does not trust', async () => {
    const result = await pollOnce({ dbUrl: db.url, collectorUrl: collector.url, extraArgs: ['--ca-file', file('ca.pem'), '--cert-file', file('rogue.pem'), '--key-file', file('rogue.key'), ...quick] });
    assert.equal(result.code, 1);
    assert.equal((await collector.stats()).recordsAccepted, 0);
  });

  it('is not trusted by the probe without the site CA', async () => {
    const result = await pollOnce({ dbUrl: db.url, collectorUrl: collector.url, extraArgs: ['--cert-file', file('client.pem'), '--key-file', file('client.key'), ...quick] });
    assert.equal(result.code, 1);
    assert.match(result.stderr, /certificate|self.signed|UNABLE_TO|SELF_SIGNED/i);
  });

  it('receives everything with the CA, the client certificate and its key', async () => {
    const result = await pollOnce({ dbUrl: db.url, collectorUrl: collector.url, extraArgs: [...tls, ...quick] });
    assert.equal(result.code, 0, result.stderr);
    assert.equal(await queueDepth(db), 0);
    assert.ok((await collector.stats()).recordsAccepted > 0);
  });

  it('goes through the proxy named in HTTPS_PROXY', async () => {
    await collector.reset();
    const proxy = await startConnectProxy();
    try {
      const sim = simulate(30, 52);
      await write(db, sim);
      const result = await pollOnce({ dbUrl: db.url, collectorUrl: collector.url, extraArgs: [...tls, ...quick], env: { HTTPS_PROXY: proxy.url, https_proxy: proxy.url, NO_PROXY: '', no_proxy: '' } });
      assert.equal(result.code, 0, result.stderr);
      // Every connection to the collector went through the proxy (one per parallel worker).
      assert.ok(proxy.tunnels.length >= 1);
      assert.deepEqual(new Set(proxy.tunnels), new Set([new URL(collector.url).host]));
      checkDelivery(sim, await collector.records());
    } finally {
      await proxy.close();
    }
  });
});
