import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { mapRow, submitHostOf, voFromFqan, type MappingOptions, type UsageRecord } from '../src/record/mapping';
import { isoDuration, rfc3339 } from '../src/record/time';
import { EncodeError, type CapturedRow } from '../src/record/types';

const OPTIONS: MappingOptions = { probeName: 'dcache-transfer:probe.example.org', siteName: 'EXAMPLE_SE', grid: 'OSG', dcacheServerHost: 'dcache.example.org', reportTape: true };
const END = Date.parse('2024-03-14T18:31:57.123Z');

/** The WebDAV upload of the facts sheet, modern schema, with its door row. */
function webdavUpload(overrides: Record<string, unknown> = {}, door: Record<string, unknown> | null = {}): CapturedRow {
  return {
    id: '1',
    source: 'billinginfo',
    capturedAtMs: Date.parse('2024-03-14T18:31:58.900Z'),
    datestampMs: END,
    record: {
      datestamp: '2024-03-14T18:31:57.123+00:00',
      cellname: 'pool1@dCacheDomain',
      action: 'transfer',
      transaction: 'pool:pool1@dCacheDomain:1564991269000-1',
      pnfsid: '0000FA09235CA0974697AB93F00FFEA61620',
      fullsize: 964544,
      transfersize: 964544,
      storageclass: '<Unknown>:<Unknown>@osm',
      isnew: true,
      client: '0:0:0:0:0:0:0:1',
      connectiontime: 323,
      errorcode: 0,
      errormessage: '',
      protocol: 'Http-1.1',
      initiator: 'door:WebDAV-dcache@dCacheDomain:AAWPWeyoBWg:1564991268926000',
      p2p: false,
      fqan: null,
      mappeduid: 1000,
      mappedgid: 1000,
      owner: 'tester',
      ...overrides,
    },
    door:
      door === null
        ? null
        : { cellname: 'WebDAV-dcache@dCacheDomain', action: 'request', owner: 'tester', mappeduid: 1000, mappedgid: 1000, client: '192.0.2.7', ...door },
  };
}

function record(row: CapturedRow, options = OPTIONS): UsageRecord {
  const result = mapRow(row, options);
  assert.equal(result.kind, 'record');
  return (result as { record: UsageRecord }).record;
}

function resource(r: UsageRecord, description: string): string | undefined {
  return r.resources.find((x) => x.description === description)?.value;
}

describe('mapping a billinginfo transfer', () => {
  it('takes LocalJobId from the transaction and derives a deterministic recordId from probe name and transaction', () => {
    const r = record(webdavUpload());
    assert.equal(r.localJobId, 'pool:pool1@dCacheDomain:1564991269000-1');
    assert.equal(r.recordId, 'dcache-transfer:probe.example.org:pool:pool1@dCacheDomain:1564991269000-1');
    assert.deepEqual(record(webdavUpload()), r, 'the same row always gives the same record');
  });

  it('uses the billing datestamp as createTime, so every copy of a row and every re-send is byte-identical', () => {
    const row = webdavUpload();
    assert.equal(record(row).createTimeMs, row.datestampMs);
    // Another copy of the same transaction, captured later (a second billing cell): the same record.
    assert.deepEqual(record({ ...row, id: '2', capturedAtMs: row.capturedAtMs + 60_000 }), record(row));
  });

  it('sets EndTime to the datestamp and StartTime to datestamp minus connectiontime', () => {
    const r = record(webdavUpload({ connectiontime: 8534 }));
    assert.equal(r.endTimeMs, END);
    assert.equal(r.startTimeMs, END - 8534);
    assert.equal(r.durationMs, 8534);
  });

  it('reports transfersize as the bytes moved', () => {
    assert.equal(record(webdavUpload({ transfersize: 5, fullsize: 964544 })).networkBytes, 5);
  });

  it('turns a negative transfersize (broken mover) into 0 bytes and 0 duration', () => {
    const r = record(webdavUpload({ transfersize: -1, connectiontime: 9000 }));
    assert.equal(r.networkBytes, 0);
    assert.equal(r.durationMs, 0);
    assert.equal(r.startTimeMs, r.endTimeMs);
  });

  it('writes: Source is the client, Destination the pool as cellname@DCacheServerHost; IsNew 1', () => {
    const r = record(webdavUpload({ isnew: true }));
    assert.equal(resource(r, 'Source'), '0:0:0:0:0:0:0:1');
    assert.equal(resource(r, 'Destination'), 'pool1@dCacheDomain@dcache.example.org');
    assert.equal(resource(r, 'IsNew'), '1');
  });

  it('reads: Source is the pool, Destination the client; IsNew 0', () => {
    const r = record(webdavUpload({ isnew: false, client: '198.51.100.4' }));
    assert.equal(resource(r, 'Source'), 'pool1@dCacheDomain@dcache.example.org');
    assert.equal(resource(r, 'Destination'), '198.51.100.4');
    assert.equal(resource(r, 'IsNew'), '0');
  });

  it('keeps the protocol as dCache wrote it', () => {
    assert.equal(resource(record(webdavUpload({ protocol: 'Xrootd-5.0' })), 'Protocol'), 'Xrootd-5.0');
  });

  it('puts DCap transfers on the Local grid and others on the configured grid', () => {
    assert.equal(record(webdavUpload({ protocol: 'DCap-3.0' })).grid, 'Local');
    assert.equal(record(webdavUpload({ protocol: 'GFtp-2.0' })).grid, 'OSG');
  });

  it('reports errorcode as Status and the action as the Network description', () => {
    const r = record(webdavUpload({ errorcode: 10006, errormessage: 'No connection from client after 300 seconds. Giving up.' }));
    assert.equal(r.status, 10006);
    assert.equal(r.action, 'transfer');
  });

  it('takes SubmitHost from the door client, from the mover client where the door says unknown (DCap) or is missing', () => {
    assert.equal(record(webdavUpload()).submitHost, '192.0.2.7');
    assert.equal(record(webdavUpload({ client: '203.0.113.9' }, { client: 'unknown' })).submitHost, '203.0.113.9');
    assert.equal(record(webdavUpload({ client: '203.0.113.9' }, null)).submitHost, '203.0.113.9');
    assert.equal(submitHostOf({ client: null }, { client: 'unknown' }), 'Unknown');
  });

  it('sends a subject DN as DN and the owner as LocalUserId; a plain user name is not a DN', () => {
    const dn = '/C=SI/O=SiGNET/O=IJS/OU=F9/CN=Andrej Filipcic';
    const withDn = record(webdavUpload({ owner: null }, { owner: dn }));
    assert.equal(withDn.dn, dn);
    assert.equal(withDn.localUserId, dn);
    const plain = record(webdavUpload());
    assert.equal(plain.dn, undefined);
    assert.equal(plain.localUserId, 'tester');
  });

  it('falls back to the mover owner (dCache >= 2.16) when there is no door row', () => {
    assert.equal(record(webdavUpload({ owner: '/DC=org/CN=Mover Owner' }, null)).dn, '/DC=org/CN=Mover Owner');
  });

  it('derives VOName from the primary FQAN', () => {
    assert.equal(record(webdavUpload({ fqan: '/cms/Role=production/Capability=NULL' })).voName, 'cms');
    assert.equal(voFromFqan(null), undefined);
    assert.equal(record(webdavUpload({ fqan: null }, { fqan: '/atlas/Role=NULL' })).voName, 'atlas');
  });

  it('adds ProbeName and SiteName from the configuration', () => {
    const r = record(webdavUpload());
    assert.equal(r.probeName, OPTIONS.probeName);
    assert.equal(r.siteName, 'EXAMPLE_SE');
  });

  it('skips pool-to-pool copies', () => {
    assert.deepEqual(mapRow(webdavUpload({ p2p: true }), OPTIONS), { kind: 'skip', reason: 'pool-to-pool copy' });
  });

  it('reads the legacy form: numeric values as strings or numbers, no owner/fqan/p2p columns', () => {
    const legacy = webdavUpload({ owner: undefined, fqan: undefined, p2p: undefined, mappeduid: undefined, mappedgid: undefined, transfersize: '964544', connectiontime: '323', errorcode: '0' }, { owner: '/DC=org/CN=Legacy User' });
    const r = record(legacy);
    assert.equal(r.networkBytes, 964544);
    assert.equal(r.durationMs, 323);
    assert.equal(r.status, 0);
    assert.equal(r.dn, '/DC=org/CN=Legacy User');
  });

  it('refuses rows it cannot encode, with a reason (they are quarantined)', () => {
    assert.throws(() => mapRow(webdavUpload({ transaction: null }), OPTIONS), EncodeError);
    assert.throws(() => mapRow({ ...webdavUpload(), datestampMs: null }, OPTIONS), /unreadable datestamp/);
  });
});

describe('mapping a storageinfo tape row', () => {
  const tape = (action: string): CapturedRow => ({
    id: '2',
    source: 'storageinfo',
    capturedAtMs: END + 5000,
    datestampMs: END,
    record: { action, cellname: 'pool_r01@pool_r01Domain', transaction: 'pool:pool_r01@pool_r01Domain:1710441117123-9', pnfsid: 'AB', fullsize: 2000, storageclass: 'cms:raw@osm', queuedtime: 60000, connectiontime: 4000, errorcode: 0 },
    door: null,
  });

  it('reports a flush (store) from the pool to the HSM, starting after its queue time', () => {
    const r = record(tape('store'));
    assert.equal(resource(r, 'Source'), 'pool_r01@pool_r01Domain@dcache.example.org');
    assert.equal(resource(r, 'Destination'), 'hsm:osm');
    assert.equal(resource(r, 'TransferType'), 'HSM flush');
    assert.equal(r.startTimeMs, END + 60000);
    assert.equal(r.endTimeMs, END + 64000);
    assert.equal(r.networkBytes, 2000);
    assert.equal(r.action, 'store');
  });

  it('reports a stage (restore) from the HSM to the pool', () => {
    const r = record(tape('restore'));
    assert.equal(resource(r, 'Source'), 'hsm:osm');
    assert.equal(resource(r, 'TransferType'), 'HSM stage');
  });

  it('is switched off by reportTape: false', () => {
    assert.equal(mapRow(tape('store'), { ...OPTIONS, reportTape: false }).kind, 'skip');
  });
});

describe('time and duration formats', () => {
  it('writes RFC 3339 UTC with milliseconds', () => {
    assert.equal(rfc3339(END), '2024-03-14T18:31:57.123Z');
  });
  it('writes ISO 8601 durations exactly', () => {
    assert.equal(isoDuration(8534), 'PT8.534S');
    assert.equal(isoDuration(323), 'PT0.323S');
    assert.equal(isoDuration(1500), 'PT1.5S');
    assert.equal(isoDuration(0), 'PT0S');
    assert.equal(isoDuration(60000), 'PT60S');
  });
  it('refuses times GRACC cannot parse', () => {
    assert.throws(() => rfc3339(Date.parse('+010000-01-01T00:00:00Z')), EncodeError);
  });
});
