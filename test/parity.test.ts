/**
 * What the old Gratia dCache-transfer probe did: its ProbeConfig, passwd / group / user-vo-map
 * identity, its switches, EnableProbe and StopFileName, the ProbeDetails handshake, and legacy
 * databases across DST changes. The files are written here in their real formats.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { IdentityFiles, parseIdFile, parseUserVoMap, tablesFrom } from '../src/record/identity';
import { applyFilters, identity, NO_FILTERS, type UsageRecord } from '../src/record/mapping';
import { collectorUrlFrom, databaseUrlFrom, translateProbeConfig } from '../src/config/probe-config';
import { startCollector, type CollectorProcess } from './helpers/collector';
import { withDatabaseAndCollector } from './helpers/fixture';
import { createBillingDatabase, type BillingDatabase } from './helpers/database';
import { waitFor } from './helpers/env';
import { fieldsOf } from './helpers/expectations';
import { runCli, startProbe } from './helpers/probe';
import { queueDepth, quarantineSize, simulate, write } from './helpers/scenario';

const dir = mkdtempSync(join(tmpdir(), 'probe-parity-'));
const file = (name: string, content: string) => {
  const path = join(dir, name);
  writeFileSync(path, content);
  return path;
};

const PASSWD = 'root:x:0:0:root:/root:/bin/bash\ncmsprod:x:5001:5000::/home/cmsprod:/sbin/nologin\n# a comment\natlas01:x:5002:5000::/home/atlas01:/sbin/nologin\n';
const GROUP = 'root:x:0:\ncms:x:5000:cmsprod\nosg:x:6000:\ntesters:x:1000:\n';
const USER_VO_MAP = '#User-VO map\n#voi cms atlas osg\n#VOc CMS ATLAS OSG\ncmsprod cms\natlas01 atlas\nosg osg\n';

describe('identity files', () => {
  it('reads passwd and group files by id', () => {
    assert.equal(parseIdFile(PASSWD).get(5001), 'cmsprod');
    assert.equal(parseIdFile(GROUP).get(6000), 'osg');
    assert.equal(parseIdFile(PASSWD).get(42), undefined);
  });

  it('reads user-vo-map with reportable names from #voi / #VOc', () => {
    const map = parseUserVoMap(USER_VO_MAP);
    assert.deepEqual(map.get('cmsprod'), { vo: 'cms', reportable: 'CMS' });
    assert.deepEqual(map.get('osg'), { vo: 'osg', reportable: 'OSG' });
    assert.deepEqual(parseUserVoMap('alice dteam\n').get('alice'), { vo: 'dteam', reportable: 'dteam' });
  });

  const tables = tablesFrom({ passwd: parseIdFile(PASSWD), group: parseIdFile(GROUP), userVo: parseUserVoMap(USER_VO_MAP) });
  const dn = '/DC=ch/DC=cern/CN=cmsprod';

  it('takes LocalUserId from the uid, else the gid, else the owner; NFS keeps the owner', () => {
    assert.equal(identity({ protocol: 'GFtp-2.0' }, { owner: dn, mappeduid: 5001, mappedgid: 5000 }, tables).localUserId, 'cmsprod');
    assert.equal(identity({ protocol: 'GFtp-2.0' }, { owner: dn, mappeduid: 7777, mappedgid: 6000 }, tables).localUserId, 'osg');
    assert.equal(identity({ protocol: 'GFtp-2.0' }, { owner: dn, mappeduid: -1, mappedgid: -1 }, tables).localUserId, dn);
    assert.equal(identity({ protocol: 'NFS4-4.1' }, { owner: 'alice', mappeduid: 5001, mappedgid: 5000 }, tables).localUserId, 'alice');
  });

  it('takes the VO from user-vo-map, else from the FQAN', () => {
    const mapped = identity({ protocol: 'GFtp-2.0', fqan: '/atlas/Role=NULL' }, { owner: dn, mappeduid: 5001 }, tables);
    assert.deepEqual([mapped.voName, mapped.reportableVoName], ['cms', 'CMS']);
    const fromFqan = identity({ protocol: 'GFtp-2.0', fqan: '/dteam/Role=NULL' }, { owner: dn, mappeduid: 9999 }, tables);
    assert.deepEqual([fromFqan.voName, fromFqan.reportableVoName], ['dteam', 'dteam']);
  });

  it('reads a file again when it changes', () => {
    let now = 0;
    const path = file('changing-vo-map', 'cmsprod cms\n');
    const files = new IdentityFiles({ userVoMapFile: path }, () => undefined, () => now);
    assert.equal(files.voOf('cmsprod')?.vo, 'cms');
    writeFileSync(path, 'cmsprod cms-production\n');
    now += 1000;
    assert.equal(files.voOf('cmsprod')?.vo, 'cms', 'not looked at again within two seconds');
    now += 2000;
    assert.equal(files.voOf('cmsprod')?.vo, 'cms-production');
  });

  it('says once when a file cannot be read, and maps without it', () => {
    const problems: string[] = [];
    const files = new IdentityFiles({ userVoMapFile: join(dir, 'missing') }, (p) => problems.push(p));
    assert.equal(files.voOf('x'), undefined);
    assert.equal(files.voOf('y'), undefined);
    assert.equal(problems.length, 1);
  });
});

describe("the old probe's switches", () => {
  const record = (over: Partial<UsageRecord>): UsageRecord => ({
    recordId: 'r', createTimeMs: 0, localJobId: 'j', resources: [{ description: 'Protocol', value: 'GFtp-2.0' }], startTimeMs: 0, endTimeMs: 0,
    networkBytes: 1, durationMs: 1, action: 'transfer', status: 0, probeName: 'p', siteName: 's', grid: 'OSG', dn: '/CN=x', voName: 'cms', ...over,
  });
  const on = { ...NO_FILTERS };

  it('OnlySendInterSiteTransfers leaves out DCap', () => {
    assert.equal(applyFilters(record({ resources: [{ description: 'Protocol', value: 'DCap-3.0' }] }), { ...on, onlyInterSiteTransfers: true }).kind, 'skip');
    assert.equal(applyFilters(record({}), { ...on, onlyInterSiteTransfers: true }).kind, 'record');
  });
  it('SuppressGridLocalRecords, SuppressNoDNRecords and SuppressUnknownVORecords leave records out', () => {
    assert.equal(applyFilters(record({ grid: 'Local' }), { ...on, suppressGridLocal: true }).kind, 'skip');
    assert.equal(applyFilters(record({ dn: undefined }), { ...on, suppressNoDn: true }).kind, 'skip');
    assert.equal(applyFilters(record({ voName: undefined }), { ...on, suppressUnknownVo: true }).kind, 'skip');
  });
  it('QuarantineUnknownVORecords keeps unmapped records for replay; suppression wins, as in the old probe', () => {
    assert.deepEqual(applyFilters(record({ voName: undefined, localUserId: 'nobody' }), { ...on, quarantineUnknownVo: true }), {
      kind: 'quarantine',
      reason: 'unknown VO for user nobody (QuarantineUnknownVORecords)',
    });
    assert.equal(applyFilters(record({ voName: undefined }), { ...on, quarantineUnknownVo: true, suppressUnknownVo: true }).kind, 'skip');
  });
  it('all off: every record goes', () => {
    assert.equal(applyFilters(record({ voName: undefined, dn: undefined, grid: 'Local' })).kind, 'record');
  });
});

describe('ProbeConfig translation', () => {
  it('builds the collector URL from the host, service and SSL attributes', () => {
    assert.equal(collectorUrlFrom({ CollectorHost: 'gratia.example.org:8880' }), 'http://gratia.example.org:8880/gratia-servlets/rmi');
    assert.equal(collectorUrlFrom({ CollectorHost: 'c:80', SSLHost: 'gracc.example.org:443', UseSSL: '1', SSLCollectorService: '/gratia-servlets/rmi' }), 'https://gracc.example.org:443/gratia-servlets/rmi');
  });

  it('builds the database URL, and an empty DBPassword means no password', () => {
    assert.equal(databaseUrlFrom({ DBHostName: 'db.example.org', DBLoginName: 'srmdcache', DBPassword: 's3c:r@t', DBName: 'billing' }), 'postgres://srmdcache:s3c%3Ar%40t@db.example.org/billing');
    assert.equal(databaseUrlFrom({ DBHostName: 'localhost', DBLoginName: 'srmdcache', DBPassword: '', DBName: 'billing' }), 'postgres://srmdcache@localhost/billing');
  });

  it('maps the attributes that apply and names the ones that do not', () => {
    const t = translateProbeConfig({ SiteName: 'S', BundleSize: '100', UpdateFrequency: '120', StopFileName: 'stopGratiaFeed', WorkingFolder: '/var/lib/gratia/tmp', MaxPendingFiles: '100000', Frobnicate: '1' }, '/etc/gratia/dCache-transfer/ProbeConfig');
    assert.equal(t.values.get('probe.siteName')?.value, 'S');
    assert.equal(t.values.get('pipeline.bundleSize')?.value, '100');
    assert.equal(t.values.get('pipeline.pollIntervalSeconds')?.value, '120');
    assert.equal(t.values.get('probe.stopFile')?.value, '/var/lib/gratia/tmp/stopGratiaFeed');
    assert.ok(t.notCarriedOver.some((n) => n.startsWith('MaxPendingFiles')));
    assert.ok(t.notCarriedOver.some((n) => n.startsWith('Frobnicate (not known')));
  });
});

/** A ProbeConfig as sites have it (values for this test's database and collector). */
function probeConfig(db: BillingDatabase, collectorUrl: string, extra: Record<string, string> = {}): string {
  const u = new URL(db.url);
  const c = new URL(collectorUrl);
  const attrs: Record<string, string> = {
    CollectorHost: c.host, SSLHost: c.host, SSLRegistrationHost: c.host, CollectorService: '/gratia-servlets/rmi', SSLCollectorService: '/gratia-servlets/rmi', UseSSL: '0',
    CertificateFile: '/etc/grid-security/hostcert.pem', KeyFile: '/etc/grid-security/hostkey.pem', ProbeName: 'dcache-transfer:test.example.org', SiteName: 'TEST_SITE', Grid: 'OSG',
    BundleSize: '100', MaxPendingFiles: '100000', DataFolder: '/var/lib/gratia/data/', WorkingFolder: dir, LogFolder: '/var/log/gratia/',
    UserVOMapFile: file('user-vo-map', USER_VO_MAP), SuppressUnknownVORecords: '0', SuppressNoDNRecords: '0', SuppressGridLocalRecords: '0', QuarantineUnknownVORecords: '1',
    EnableProbe: '1', UpdateFrequency: '120', Summarize: '0', DBHostName: u.hostname, DBLoginName: 'postgres', DBPassword: '', DBName: u.pathname.slice(1),
    DCacheServerHost: 'dcache.example.org', StopFileName: 'stopGratiaFeed', EmailServerHost: 'localhost', EmailFromAddress: 'dCache@localhost', EmailToList: '',
    AggrLogLevel: 'warn', OnlySendInterSiteTransfers: 'true', MaxBillingHistoryDays: '31', UnixGidListFileName: file('group', GROUP), ...extra,
  };
  const xml = `<ProbeConfiguration\n${Object.entries(attrs).map(([k, v]) => `    ${k}="${v}"`).join('\n')}\n/>\n`;
  return file(`ProbeConfig-${db.name}`, xml);
}

for (const form of ['modern', 'legacy'] as const) {
  describe(`a site switching with its ProbeConfig (${form} schema)`, () => {
    let db: BillingDatabase;
    let collector: CollectorProcess;
    withDatabaseAndCollector(form, (d, c) => ((db = d), (collector = c)));

    it('delivers with its collector, site, identity files and switches, quarantining unmapped VOs', async () => {
      const sim = simulate(300, form === 'modern' ? 61 : 62, form);
      await write(db, sim);
      const result = await runCli(['poll', '--once', '--probe-config', probeConfig(db, collector.url), '--passwd-file', file('passwd', PASSWD), '--door-grace', '0']);
      assert.equal(result.code, 0, result.stderr);
      assert.equal(await queueDepth(db), 0);

      const records = new Map((await collector.records()).map((r) => [r.localJobId, fieldsOf(r.xml)]));
      const xmlOf = new Map((await collector.records()).map((r) => [r.localJobId, r.xml]));
      const passwd = parseIdFile(PASSWD);
      const group = parseIdFile(GROUP);
      const voMap = parseUserVoMap(USER_VO_MAP);
      let dcap = 0;
      let quarantined = 0;
      for (const t of sim.filter((x) => x.reportable)) {
        const id = t.mover.transaction as string;
        if (String(t.mover.protocol).startsWith('DCap')) {
          dcap++;
          assert.ok(!records.has(id), `${id}: DCap transfers are left out (OnlySendInterSiteTransfers)`);
          continue;
        }
        // The rules, stated over the simulator's own rows: uid, else gid, else owner (NFS: owner);
        // VO from user-vo-map, else from the FQAN (the legacy schema has none).
        const uid = Number(t.door?.mappeduid ?? t.mover.mappeduid ?? -1);
        const gid = Number(t.door?.mappedgid ?? t.mover.mappedgid ?? -1);
        const owner = (t.door?.owner ?? t.mover.owner ?? undefined) as string | undefined;
        const nfs = String(t.mover.protocol).startsWith('NFS4');
        const user = nfs ? owner : (passwd.get(uid) ?? group.get(gid) ?? owner);
        const fqan = (t.mover.fqan ?? t.door?.fqan) as string | null | undefined;
        const vo = (user !== undefined ? voMap.get(user) : undefined) ?? (fqan ? { vo: fqan.split('/')[1]!, reportable: fqan.split('/')[1]! } : undefined);
        if (!vo) {
          quarantined++;
          assert.ok(!records.has(id), `${id}: no VO, so quarantined`);
          continue;
        }
        const f = records.get(id);
        assert.ok(f, `${id} delivered`);
        assert.equal(f.localUserId, user);
        assert.equal(f.siteName, 'TEST_SITE');
        assert.ok(xmlOf.get(id)!.includes(`<VOName>${vo.vo}</VOName><ReportableVOName>${vo.reportable}</ReportableVOName>`), id);
      }
      assert.ok(dcap > 0 && quarantined > 0);
      assert.equal(await quarantineSize(db), quarantined, 'exactly the records without a VO are in the quarantine');
    });

    it('the Suppress switches leave out exactly the records without a DN, without a VO, and on the Local grid', async () => {
      await collector.reset();
      await db.query('DELETE FROM dcache_probe.quarantine');
      const sim = simulate(300, form === 'modern' ? 65 : 66, form);
      await write(db, sim);
      const config = probeConfig(db, collector.url, { SuppressNoDNRecords: '1', SuppressUnknownVORecords: '1', SuppressGridLocalRecords: '1', OnlySendInterSiteTransfers: 'false', QuarantineUnknownVORecords: '0' });
      const result = await runCli(['poll', '--once', '--probe-config', config, '--passwd-file', file('passwd', PASSWD), '--door-grace', '0']);
      assert.equal(result.code, 0, result.stderr);
      assert.equal(await queueDepth(db), 0);
      assert.equal(await quarantineSize(db), 0, 'suppressed, not quarantined');
      const records = (await collector.records()).map((r) => r.xml);
      assert.ok(records.length > 0);
      assert.ok(records.every((x) => /<DN>\//.test(x)), 'every record has a DN');
      assert.ok(records.every((x) => /<VOName>/.test(x)), 'every record has a VO');
      assert.ok(records.every((x) => !/<Grid>Local<\/Grid>/.test(x)), 'no Local-grid record');
      // And what was left out is counted in the ledger as skipped, not lost.
      const { rows } = await db.query<{ skipped: string }>(`SELECT coalesce(sum(skipped), 0) AS skipped FROM dcache_probe.delivered_hour`);
      assert.ok(Number(rows[0]!.skipped) >= sim.filter((t) => t.reportable).length - records.length);
    });

    it('EnableProbe="0" delivers nothing and says so', async () => {
      const sim = simulate(10, 63, form);
      await write(db, sim);
      const before = await queueDepth(db);
      const result = await runCli(['poll', '--once', '--probe-config', probeConfig(db, collector.url, { EnableProbe: '0' })]);
      assert.equal(result.code, 0);
      assert.match(result.stderr, /the probe is disabled/);
      assert.equal(await queueDepth(db), before);
    });
  });
}

describe('StopFileName and the handshake', () => {
  let db: BillingDatabase;
  let collector: CollectorProcess;
  withDatabaseAndCollector('modern', (d, c) => ((db = d), (collector = c)));

  it('sends a ProbeDetails handshake naming the probe, Node.js and the billing schema it found', async () => {
    const probe = await startProbe({ dbUrl: db.url, collectorUrl: collector.url });
    try {
      const handshake = await waitFor('the handshake', async () => (await collector.handshakes())[0]);
      assert.match(handshake!, /<ProbeName>dcache-transfer:test\.example\.org<\/ProbeName><SiteName>TEST_SITE<\/SiteName>/);
      assert.match(handshake!, /<Software urwg:version="[0-9.]+" urwg:type="component">dcache-transfer-probe<\/Software>/);
      assert.match(handshake!, new RegExp(`<Software urwg:version="${process.versions.node}" urwg:type="runtime">Node.js</Software>`));
      assert.match(handshake!, /urwg:version="modern \(dCache &gt;= 2\.16\)" urwg:type="input">dCache billing database</);
    } finally {
      await probe.stop('SIGTERM');
    }
  });

  it('delivers nothing while the stop file exists, and everything once it is removed', async () => {
    await collector.reset();
    const stopFile = join(dir, 'stopGratiaFeed');
    writeFileSync(stopFile, '');
    const sim = simulate(50, 64);
    await write(db, sim);
    const settings = ['--db-url', db.url, '--collector-url', collector.url, '--site-name', 'TEST_SITE', '--stop-file', stopFile, '--door-grace', '0', '--metrics-port', '0'];
    const stopped = await runCli(['poll', '--once', ...settings]);
    assert.equal(stopped.code, 0);
    assert.match(stopped.stderr, /stop file present: not delivering until it is removed/);
    assert.equal((await collector.stats()).recordsAccepted, 0);
    assert.ok((await queueDepth(db)) > 0);

    // The daemon notices the removal by itself (its poll looks again).
    const probe = await startProbe({ dbUrl: db.url, collectorUrl: collector.url, extraArgs: ['--stop-file', stopFile, '--poll-interval', '0.2', '--door-grace', '0'] });
    try {
      await waitFor('the daemon to notice the stop file', () => probe.output().includes('stop file present'));
      assert.equal((await collector.stats()).recordsAccepted, 0);
      rmSync(stopFile);
      await waitFor('delivery after the stop file went', async () => (await queueDepth(db)) === 0);
      assert.match(probe.output(), /stop file removed: delivering again/);
      assert.equal((await collector.stats()).recordsAccepted, sim.filter((t) => t.reportable).length);
    } finally {
      await probe.stop('SIGTERM');
    }
  });
});

describe('legacy databases across DST changes', () => {
  let db: BillingDatabase;
  let collector: CollectorProcess;
  withDatabaseAndCollector('legacy', (d, c) => ((db = d), (collector = c)));

  it('reads timestamp-without-time-zone values in the configured zone, on both sides of each change', async () => {
    // Local billing times (Europe/Berlin) and the UTC they are: spring forward on 2024-03-31
    // at 02:00 (+01 -> +02), fall back on 2024-10-27 at 03:00 (+02 -> +01). Inside the repeated
    // hour a local time is ambiguous; PostgreSQL reads it as standard time (the second one).
    const cases: [string, string][] = [
      ['2024-03-31 01:59:59.500', '2024-03-31T00:59:59.500Z'],
      ['2024-03-31 03:00:00.250', '2024-03-31T01:00:00.250Z'],
      ['2024-10-27 01:59:00.000', '2024-10-26T23:59:00.000Z'],
      ['2024-10-27 02:30:00.000', '2024-10-27T01:30:00.000Z'],
      ['2024-10-27 03:00:00.000', '2024-10-27T02:00:00.000Z'],
      ['2024-07-01 12:00:00.000', '2024-07-01T10:00:00.000Z'],
      ['2024-12-01 12:00:00.000', '2024-12-01T11:00:00.000Z'],
    ];
    for (const [i, [local]] of cases.entries()) {
      await db.query(`INSERT INTO billinginfo (datestamp, cellname, action, transaction, pnfsid, transfersize, isnew, client, connectiontime, errorcode, protocol, initiator)
                      VALUES ($1::timestamp, 'pool1@d', 'transfer', $2, 'AB', 1, false, '192.0.2.1', 1000, 0, 'GFtp-2.0', '<undefined>')`, [local, `dst-${i}`]);
    }
    const result = await runCli(['poll', '--once', '--db-url', db.url, '--collector-url', collector.url, '--site-name', 'S', '--db-time-zone', 'Europe/Berlin']);
    assert.equal(result.code, 0, result.stderr);
    const byId = new Map((await collector.records()).map((r) => [r.localJobId, fieldsOf(r.xml)]));
    for (const [i, [, utc]] of cases.entries()) {
      assert.equal(byId.get(`dst-${i}`)?.endTime, utc, `local ${cases[i]![0]}`);
      assert.equal(byId.get(`dst-${i}`)?.startTime, new Date(Date.parse(utc) - 1000).toISOString());
    }
  });
});

