/**
 * `dcache-probe backfill` and `dcache-probe import-checkpoint` with real processes: historic
 * rows written into the billing tables with the capture trigger disabled (so they are "from
 * before the probe"), the commands as child processes, then `poll --once` (or `run`) delivering
 * to the GRACC-strict test collector.
 */
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { buildProgram } from '../src/cli/main';
import type { AcceptedRecord } from '../src/tools/collector/server';
import { SQL_DIR, listMigrations } from '../src/db/migrations';
import { TransferGenerator, messageStream, writeMessages, type Message, type Row, type SimTransfer } from '../src/tools/demo/simulator';
import type { CollectorProcess } from './helpers/collector';
import { adminQuery, createBillingDatabase, type BillingDatabase } from './helpers/database';
import { CLI, databaseUrl, waitFor } from './helpers/env';
import { checkDelivery } from './helpers/expectations';
import { withDatabaseAndCollector } from './helpers/fixture';
import { pollOnce, runCli, startProbe, type CommandResult } from './helpers/probe';
import { capturedRows, queueDepth, reportable } from './helpers/scenario';

/** Zone of the legacy `timestamp without time zone` columns (writers and probe agree on it). */
const ZONE = 'America/Chicago';
const MINUTE = 60_000;
const HOUR = 60 * MINUTE;

/** Transfers whose mover datestamps lie in [from - 3 s, from + count * stepMs) (the simulator's clock skew is <= 3 s). */
function historic(count: number, form: 'modern' | 'legacy', seed: number, from: number, stepMs: number): SimTransfer[] {
  let i = 0;
  const generator = new TransferGenerator({ seed, form, duplicateShare: 0.02, p2pShare: 0.04, noDoorShare: 0.02, errorShare: 0.05, now: () => from + i++ * stepMs });
  return Array.from({ length: count }, () => generator.next());
}

/** storageinfo rows: tape flushes and stages (reported), and a row of another action (not reported). */
function tapeRows(from: number, prefix: string): Row[] {
  return ['store', 'restore', 'store', 'remove'].map((action, i) => ({
    datestamp: new Date(from + i * 1000),
    cellname: 'pool_tape@tapeDomain',
    action,
    transaction: `${prefix}-${action}-${i}`,
    pnfsid: `0000TAPE${i}`,
    fullsize: 1_000_000 * (i + 1),
    storageclass: 'cms:raw@osm',
    connectiontime: 5000,
    queuedtime: 2000,
    errorcode: 0,
    errormessage: '',
  }));
}

/** Writes rows like dCache but with our capture trigger disabled: rows from before the probe. */
async function writeBeforeTheProbe(db: BillingDatabase, transfers: readonly SimTransfer[], tape: readonly Row[] = []): Promise<void> {
  await db.query('ALTER TABLE billinginfo DISABLE TRIGGER dcache_probe_capture');
  await db.query('ALTER TABLE storageinfo DISABLE TRIGGER dcache_probe_capture');
  try {
    const messages: Message[] = [...messageStream(transfers, 7, 0), ...tape.map((row) => ({ table: 'storageinfo' as const, row }))];
    await writeMessages(messages, { url: db.url, writers: 4, maxTransactionRows: 50, timeZone: ZONE });
  } finally {
    await db.query('ALTER TABLE billinginfo ENABLE TRIGGER dcache_probe_capture');
    await db.query('ALTER TABLE storageinfo ENABLE TRIGGER dcache_probe_capture');
  }
}

const iso = (ms: number) => new Date(ms).toISOString();

function backfill(db: BillingDatabase, args: string[]): Promise<CommandResult> {
  return runCli(['backfill', '--db-url', db.url, '--db-time-zone', ZONE, '--log-level', 'warn', ...args]);
}

function importCheckpoint(db: BillingDatabase, file: string, args: string[]): Promise<CommandResult> {
  return runCli(['import-checkpoint', file, '--db-url', db.url, '--db-time-zone', ZONE, '--log-level', 'warn', ...args]);
}

function poll(db: BillingDatabase, collector: CollectorProcess): Promise<CommandResult> {
  return pollOnce({ dbUrl: db.url, collectorUrl: collector.url, extraArgs: ['--db-time-zone', ZONE, '--bundle-size', '500'] });
}

async function pollAndCheck(db: BillingDatabase, collector: CollectorProcess): Promise<void> {
  const polled = await poll(db, collector);
  assert.equal(polled.code, 0, polled.stdout + polled.stderr);
}

function copiedOf(result: CommandResult): number {
  const m = /copied (\d+) rows into the delivery queue/.exec(result.stdout);
  assert.ok(m, `no "copied" line in: ${result.stdout}${result.stderr}`);
  return Number(m[1]);
}

/** Splits the collector's records into transfers and tape records. */
function split(records: readonly AcceptedRecord[], tapePrefix: string): { transfers: AcceptedRecord[]; tape: AcceptedRecord[] } {
  return {
    transfers: records.filter((r) => !r.localJobId.startsWith(tapePrefix)),
    tape: records.filter((r) => r.localJobId.startsWith(tapePrefix)),
  };
}

/** A checkpoint file as the old probe wrote it: pickle.dump([datetime(<wall time>), ''], f, protocol). */
function writeCheckpoint(dir: string, wall: { year: number; month: number; day: number; hour: number; minute: number; second: number }, protocol: number, tz = 'None'): string {
  const file = join(dir, `chkpt_dcache_xfer_DoNotDelete.p${protocol}`);
  const d = wall;
  execFileSync('python3', [
    '-c',
    `import pickle, datetime, sys\nwith open(sys.argv[1], 'wb') as f: pickle.dump([datetime.datetime(${d.year}, ${d.month}, ${d.day}, ${d.hour}, ${d.minute}, ${d.second}, tzinfo=${tz}), ''], f, ${protocol})`,
    file,
  ]);
  return file;
}

/** Wall-clock fields of an instant in a zone (what the old probe's naive datetime held). */
function wallClock(ms: number, zone: string) {
  const p = Object.fromEntries(
    new Intl.DateTimeFormat('en-US', { timeZone: zone, hourCycle: 'h23', year: 'numeric', month: 'numeric', day: 'numeric', hour: 'numeric', minute: 'numeric', second: 'numeric' })
      .formatToParts(new Date(ms))
      .map((x) => [x.type, Number(x.value)]),
  );
  return { year: p.year!, month: p.month!, day: p.day!, hour: p.hour!, minute: p.minute!, second: p.second! };
}

for (const form of ['modern', 'legacy'] as const) {
  describe(`backfill on the ${form} billing schema`, () => {
    let db: BillingDatabase;
    let collector: CollectorProcess;
    // Six hours ago: an hour of rows before the range, an hour in it, an hour after it.
    const base = Math.floor((Date.now() - 6 * HOUR) / 1000) * 1000;
    const since = base + HOUR;
    const until = base + 2 * HOUR;
    const count = form === 'modern' ? 3000 : 1500;
    const inRange = historic(count, form, form === 'modern' ? 11 : 12, since + 10_000, (HOUR - 20_000) / count);
    const beforeRange = historic(200, form, 21, base + 10_000, (HOUR - 20_000) / 200);
    const afterRange = historic(200, form, 31, until + 10_000, (HOUR - 20_000) / 200);
    const tapePrefix = `tape-${form}`;
    const tapeInRange = tapeRows(since + 30 * MINUTE, tapePrefix);
    const tapeOutside = tapeRows(until + 30 * MINUTE, `${tapePrefix}-outside`);

    withDatabaseAndCollector(form, (d, c) => ([db, collector] = [d, c]));
    before(async () => {
      await writeBeforeTheProbe(db, [...beforeRange, ...inRange, ...afterRange], [...tapeInRange, ...tapeOutside]);
      assert.equal(await queueDepth(db), 0, 'nothing was captured: the rows are from before the probe');
    });

    it('sends every reportable transfer and tape flush/stage in [--since, --until) exactly once with the right fields, and nothing outside the range', async (t) => {
      const started = Date.now();
      const result = await backfill(db, ['--since', iso(since), '--until', iso(until), '--rate', '100000']);
      const copiedAt = Date.now();
      assert.equal(result.code, 0, result.stdout + result.stderr);
      assert.match(result.stdout, /the range is complete/);
      const copied = copiedOf(result);
      // Movers inserted twice (two billing cells) may both be copied; the delivery drops the second.
      assert.ok(copied >= reportable(inRange) + 3 && copied <= capturedRows(inRange) + 3, `copied ${copied}`);
      if (form === 'modern') assert.match(result.stdout, /\d+ pool-to-pool/);
      assert.match(result.stdout, /1 storageinfo rows that are not store\/restore/);

      const polled = await poll(db, collector);
      assert.equal(polled.code, 0, polled.stderr);
      const delivered = Date.now();
      assert.equal(await queueDepth(db), 0);
      const { transfers, tape } = split(await collector.records(), tapePrefix);
      const check = checkDelivery(inRange, transfers);
      assert.equal(check.resent, 0, 'no record was sent twice');
      assert.equal(transfers.length, reportable(inRange));
      assert.deepEqual(tape.map((r) => r.localJobId).sort(), tapeInRange.filter((r) => r.action !== 'remove').map((r) => r.transaction as string).sort());
      t.diagnostic(
        `${form}: ${inRange.length + beforeRange.length + afterRange.length} historic transfers, ${inRange.length} in the range: backfill copied ${copied} rows in ${copiedAt - started} ms ` +
          `(process included), poll --once delivered ${transfers.length + tape.length} records in ${delivered - copiedAt} ms`,
      );
    });

    it('a second backfill over the same range sends nothing new, nor does a --restart of it', async () => {
      const before = (await collector.stats()).recordsAccepted;
      const again = await backfill(db, ['--since', iso(since), '--until', iso(until)]);
      assert.equal(again.code, 0, again.stderr);
      assert.match(again.stdout, /billinginfo: this range was backfilled completely on .*; nothing to do/);
      assert.equal(await queueDepth(db), 0);

      const restarted = await backfill(db, ['--since', iso(since), '--until', iso(until), '--restart']);
      assert.equal(restarted.code, 0, restarted.stderr);
      assert.equal(copiedOf(restarted), 0);
      assert.match(restarted.stdout, new RegExp(`skipped ${capturedRows(inRange) + 3} already delivered or waiting`));
      // An overlapping range: only the rows after the first range's end are new.
      const overlapping = await backfill(db, ['--since', iso(since + 30 * MINUTE), '--until', iso(until + 30 * MINUTE), '--dry-run']);
      assert.equal(overlapping.code, 0, overlapping.stderr);
      const expectedNew = afterRange.filter((x) => (x.mover.datestamp as Date).getTime() < until + 30 * MINUTE);
      const m = /would copy (\d+) rows/.exec(overlapping.stdout);
      assert.ok(m && Number(m[1]) >= reportable(expectedNew) && Number(m[1]) <= capturedRows(expectedNew), overlapping.stdout);

      await pollAndCheck(db, collector);
      assert.equal((await collector.stats()).recordsAccepted, before, 'the collector received nothing more');
    });
  });
}

describe('an interrupted backfill', () => {
  let db: BillingDatabase;
  let collector: CollectorProcess;
  withDatabaseAndCollector('modern', (d, c) => ([db, collector] = [d, c]));

  async function progress(since: number): Promise<{ scanned: number; copied: number; finished: boolean }> {
    const { rows } = await db.query(
      `SELECT rows_scanned::int AS scanned, rows_copied::int AS copied, finished_at IS NOT NULL AS finished
         FROM dcache_probe.backfill_progress WHERE source = 'billinginfo' AND range_since = $1`,
      [iso(since)],
    );
    return rows[0] as { scanned: number; copied: number; finished: boolean };
  }

  it('continues where --limit stopped it: no row is looked at twice, and every transfer arrives exactly once', async () => {
    await collector.reset();
    const since = Date.now() - 5 * HOUR;
    const sim = historic(1000, 'modern', 41, since + 10_000, 3000);
    await writeBeforeTheProbe(db, sim);
    const rows = sim.length + sim.filter((x) => x.duplicated).length;

    const first = await backfill(db, ['--since', iso(since), '--limit', '300', '--chunk', '100']);
    assert.equal(first.code, 0, first.stderr);
    assert.match(first.stdout, /stopped at --limit; run the same command again/);
    assert.deepEqual(await progress(since), { scanned: 300, copied: copiedOf(first), finished: false });
    // Rows waiting in the queue are not copied again, even when the range is scanned afresh.
    const rescan = await backfill(db, ['--since', iso(since), '--limit', '300', '--chunk', '100', '--restart']);
    assert.equal(copiedOf(rescan), 0, rescan.stdout);
    assert.equal(await queueDepth(db), copiedOf(first));
    // (--restart reset the progress: the range starts over, with what is queued skipped.)

    const rest = await backfill(db, ['--since', iso(since), '--chunk', '100']);
    assert.equal(rest.code, 0, rest.stderr);
    assert.match(rest.stdout, /the range is complete/);
    const done = await progress(since);
    assert.equal(done.finished, true);
    assert.equal(done.scanned, rows, 'every row looked at once after the restart');
    await pollAndCheck(db, collector);
    const check = checkDelivery(sim, await collector.records());
    assert.equal(check.resent, 0);
  });

  it('continues after being killed with SIGKILL mid-way, and every transfer arrives exactly once', async (t) => {
    await collector.reset();
    const since = Date.now() - 4 * HOUR;
    const sim = historic(2000, 'modern', 42, since + 10_000, 1500);
    await writeBeforeTheProbe(db, sim);
    const child = spawn(process.execPath, [CLI, 'backfill', '--db-url', db.url, '--since', iso(since), '--rate', '800', '--chunk', '50', '--log-level', 'warn'], { stdio: 'ignore' });
    await waitFor('part of the range copied', async () => (await queueDepth(db)) >= 400, 30_000, 10);
    child.kill('SIGKILL');
    await new Promise((resolve) => child.once('exit', resolve));
    const atKill = await queueDepth(db);
    const partial = await progress(since);
    assert.equal(partial.finished, false, 'killed before the end');
    assert.equal(partial.copied, atKill, 'the saved progress matches exactly what was committed to the queue');

    const resumed = await backfill(db, ['--since', iso(since)]);
    assert.equal(resumed.code, 0, resumed.stderr);
    assert.match(resumed.stdout, /resuming after datestamp/);
    assert.equal(atKill + copiedOf(resumed), (await progress(since)).copied);
    await pollAndCheck(db, collector);
    const check = checkDelivery(sim, await collector.records());
    assert.equal(check.resent, 0);
    t.diagnostic(`killed after ${atKill} rows were copied; the second run copied ${copiedOf(resumed)}; ${reportable(sim)} transfers delivered once each`);
  });
});

describe('a backfill stopped with SIGTERM', () => {
  let db: BillingDatabase;
  let collector: CollectorProcess;
  withDatabaseAndCollector('modern', (d, c) => ([db, collector] = [d, c]));

  it('saves the chunk in hand, exits 1 saying how to continue, and the next run completes the range', async () => {
    const since = Date.now() - 4 * HOUR;
    const sim = historic(1000, 'modern', 43, since + 10_000, 3000);
    await writeBeforeTheProbe(db, sim);
    const child = spawn(process.execPath, [CLI, 'backfill', '--db-url', db.url, '--since', iso(since), '--rate', '300', '--chunk', '30', '--log-level', 'warn'], { stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    child.stdout!.on('data', (d) => (output += d));
    child.stderr!.on('data', (d) => (output += d));
    const exited = new Promise<number | null>((resolve) => child.once('exit', resolve));
    await waitFor('part of the range copied', async () => (await queueDepth(db)) >= 150, 30_000, 10);
    child.kill('SIGTERM');
    assert.equal(await exited, 1, output);
    assert.match(output, /copied \d+ rows into the delivery queue[^\n]*\ninterrupted; run the same command again to continue where it stopped/);
    const { rows } = await db.query(`SELECT rows_copied::int AS copied, finished_at FROM dcache_probe.backfill_progress WHERE source = 'billinginfo' AND range_since = $1`, [iso(since)]);
    assert.equal(rows[0]!.copied, await queueDepth(db));
    assert.equal(rows[0]!.finished_at, null);
    const rest = await backfill(db, ['--since', iso(since)]);
    assert.equal(rest.code, 0, rest.stderr);
    await pollAndCheck(db, collector);
    assert.equal(checkDelivery(sim, await collector.records()).resent, 0);
  });
});

describe('backfill throttling', () => {
  let db: BillingDatabase;
  let collector: CollectorProcess;
  withDatabaseAndCollector('modern', (d, c) => ([db, collector] = [d, c]));

  it('never holds more than --max-queue rows in the capture queue, waits for the probe to deliver, and keeps to --rate', async (t) => {
    const since = Date.now() - 3 * HOUR;
    const sim = historic(800, 'modern', 51, since + 10_000, 2000);
    await writeBeforeTheProbe(db, sim);
    const started = Date.now();
    const child = spawn(process.execPath, [CLI, 'backfill', '--db-url', db.url, '--since', iso(since), '--max-queue', '100', '--chunk', '40', '--rate', '400'], { stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    child.stdout!.on('data', (d) => (output += d));
    child.stderr!.on('data', (d) => (output += d));
    const exited = new Promise<number | null>((resolve) => child.once('exit', resolve));
    let maxDepth = 0;
    let sampling = true;
    const sampler = (async () => {
      while (sampling) {
        maxDepth = Math.max(maxDepth, await queueDepth(db));
        await new Promise((r) => setTimeout(r, 10));
      }
    })();

    // No probe yet: the backfill fills the queue up to the bound and waits.
    await waitFor('the backfill to wait for the probe', () => /waiting for the probe to deliver/.test(output), 30_000);
    await new Promise((r) => setTimeout(r, 700));
    assert.equal(child.exitCode, null, 'still waiting');
    assert.ok((await queueDepth(db)) <= 100);
    const probe = await startProbe({ dbUrl: db.url, collectorUrl: collector.url, extraArgs: ['--door-grace', '1'] });
    try {
      assert.equal(await exited, 0, output);
      const finished = Date.now();
      await waitFor('every transfer delivered', async () => (await queueDepth(db)) === 0 && (await collector.stats()).recordsAccepted >= reportable(sim), 60_000);
      sampling = false;
      await sampler;
      assert.ok(maxDepth <= 100, `the queue held ${maxDepth} rows`);
      const copied = copiedOf({ code: 0, stdout: output, stderr: '' });
      assert.ok(finished - started >= ((copied - 40) / 400) * 1000, `copied ${copied} rows in ${finished - started} ms at --rate 400`);
      const check = checkDelivery(sim, await collector.records());
      assert.equal(check.resent, 0);
      t.diagnostic(`${copied} rows copied in ${finished - started} ms with --max-queue 100 --rate 400; the queue never held more than ${maxDepth}`);
    } finally {
      sampling = false;
      await probe.stop('SIGTERM');
    }
  });
});

describe('backfill bounds and usage errors', () => {
  let db: BillingDatabase;
  let dir: string;
  before(async () => {
    db = await createBillingDatabase('modern');
    dir = mkdtempSync(join(tmpdir(), 'probe-checkpoint-'));
  });
  after(async () => db.drop());

  it('refuses a --since further back than --max-history-days (exit 2), and goes there with a larger bound', async () => {
    const old = iso(Date.now() - 40 * 24 * HOUR);
    const refused = await backfill(db, ['--since', old]);
    assert.equal(refused.code, 2);
    assert.match(refused.stderr, /--since .* is 40\.0 days ago, further back than --max-history-days 31 .*MaxBillingHistoryDays/);
    const bounded = await backfill(db, ['--since', iso(Date.now() - 10 * 24 * HOUR), '--max-history-days', '7']);
    assert.equal(bounded.code, 2);
    const allowed = await backfill(db, ['--since', old, '--max-history-days', '45', '--dry-run']);
    assert.equal(allowed.code, 0, allowed.stderr);
    assert.match(allowed.stdout, /range .* \.\. .*\ndry run: would copy 0 rows/);
    const file = writeCheckpoint(dir, wallClock(Date.now() - 40 * 24 * HOUR, 'UTC'), 2);
    const checkpoint = await importCheckpoint(db, file, ['--time-zone', 'UTC']);
    assert.equal(checkpoint.code, 2);
    assert.match(checkpoint.stderr, /the checkpoint .* further back than --max-history-days 31/);
  });

  it('refuses times without a zone, a range that ends before it starts, and files that are not checkpoints (exit 2)', async () => {
    const noZone = await backfill(db, ['--since', '2024-03-14T12:00:00']);
    assert.equal(noZone.code, 2);
    assert.match(noZone.stderr, /--since "2024-03-14T12:00:00": not an RFC 3339 time with a zone/);
    const reversed = await backfill(db, ['--since', iso(Date.now() - HOUR), '--until', iso(Date.now() - 2 * HOUR)]);
    assert.equal(reversed.code, 2);
    assert.match(reversed.stderr, /is not before the end of the range/);
    const notPickle = join(dir, 'ProbeConfig');
    writeFileSync(notPickle, '<ProbeConfiguration SiteName="X"/>\n');
    const wrongFile = await importCheckpoint(db, notPickle, []);
    assert.equal(wrongFile.code, 2);
    assert.match(wrongFile.stderr, /not a checkpoint of the old dCache-transfer probe/);
    const badZone = await importCheckpoint(db, notPickle, ['--time-zone', 'Mars/Olympus']);
    assert.equal(badZone.code, 2);
    assert.match(badZone.stderr, /--time-zone Mars\/Olympus: not a time zone/);
  });

  it('runs as the runtime role that migrate --grant-to set up, and migrate adds the backfill table to a version-1 installation', async () => {
    // A site installed before the backfill existed: schema version 1 (what "migrate" did then).
    await db.drop();
    db = await createBillingDatabase('modern', { migrate: false });
    const first = listMigrations()[0]!;
    await db.query(`BEGIN; ${readFileSync(join(SQL_DIR, 'bootstrap.sql'), 'utf8')}; SELECT set_config('dcache_probe.billing_schema', 'public', true); ${first.sql};
                    INSERT INTO dcache_probe.schema_migration (version, name, billing_schema) VALUES (${first.version}, '${first.name}', 'public'); COMMIT`);
    const role = `probe_bf_${process.pid}`;
    await adminQuery(`DROP ROLE IF EXISTS ${role}`);
    await adminQuery(`CREATE ROLE ${role} LOGIN`);
    try {
      const refused = await backfill(db, ['--since', iso(Date.now() - HOUR)]);
      assert.equal(refused.code, 1);
      assert.match(refused.stderr, /run "dcache-probe migrate"/);
      const migrated = await runCli(['migrate', '--db-url', db.url, '--grant-to', role]);
      assert.equal(migrated.code, 0, migrated.stderr);
      assert.match(migrated.stdout, /applied (.*, )?2 \(backfill\)/);
      const sim = historic(50, 'modern', 61, Date.now() - 2 * HOUR, 1000);
      await writeBeforeTheProbe(db, sim);
      const asRole = await runCli(['backfill', '--db-url', databaseUrl(db.name, role), '--since', iso(Date.now() - 3 * HOUR)]);
      assert.equal(asRole.code, 0, asRole.stderr);
      assert.equal(copiedOf(asRole), capturedRows(sim));
    } finally {
      await db.drop();
      db = await createBillingDatabase('modern');
      await adminQuery(`DROP ROLE IF EXISTS ${role}`);
    }
  });
});

for (const [form, protocol] of [['modern', 2], ['legacy', 4]] as const) {
  describe(`import-checkpoint on the ${form} billing schema (pickle protocol ${protocol})`, () => {
    let db: BillingDatabase;
    let collector: CollectorProcess;
    let dir: string;
    // The old probe's host ran in Europe/Berlin; dCache's legacy columns are in America/Chicago.
    const oldHostZone = 'Europe/Berlin';
    const checkpoint = Math.floor((Date.now() - 3 * HOUR) / 1000) * 1000;
    const sentByOldProbe = historic(300, form, 71, checkpoint - HOUR, (HOUR - 20_000) / 300);
    const notYetSent = historic(600, form, 72, checkpoint + 10_000, (2 * HOUR) / 600);

    withDatabaseAndCollector(form, (d, c) => ([db, collector] = [d, c]));
    before(async () => {
      dir = mkdtempSync(join(tmpdir(), 'probe-checkpoint-'));
      await writeBeforeTheProbe(db, [...sentByOldProbe, ...notYetSent]);
    });

    it('--dry-run prints the checkpoint, the range and the number of rows it would copy, and copies nothing', async () => {
      const file = writeCheckpoint(dir, wallClock(checkpoint, oldHostZone), protocol);
      const result = await importCheckpoint(db, file, ['--time-zone', oldHostZone, '--dry-run']);
      assert.equal(result.code, 0, result.stderr);
      assert.match(result.stdout, new RegExp(`checkpoint .*: pickle protocol ${protocol}, datestamp \\d{4}-\\d\\d-\\d\\d \\d\\d:\\d\\d:\\d\\d, transaction ""`));
      assert.match(result.stdout, new RegExp(`= ${iso(checkpoint).replace('.000Z', '.000000Z')} \\(naive local time, read in Europe/Berlin\\)`));
      assert.match(result.stdout, new RegExp(`range ${iso(checkpoint)} \\.\\. .*the triggers' installation`));
      const m = /dry run: would copy (\d+) rows/.exec(result.stdout);
      assert.ok(m && Number(m[1]) >= reportable(notYetSent) && Number(m[1]) <= capturedRows(notYetSent), result.stdout);
      assert.equal(await queueDepth(db), 0);
    });

    it("backfills from the old probe's checkpoint to the triggers' installation: everything the old probe had not sent, once", async (t) => {
      const file = writeCheckpoint(dir, wallClock(checkpoint, oldHostZone), protocol);
      const started = Date.now();
      const result = await importCheckpoint(db, file, ['--time-zone', oldHostZone]);
      assert.equal(result.code, 0, result.stdout + result.stderr);
      assert.match(result.stdout, /the range is complete/);
      await pollAndCheck(db, collector);
      const check = checkDelivery(notYetSent, await collector.records());
      assert.equal(check.resent, 0);
      t.diagnostic(`${form}: ${copiedOf(result)} rows after the checkpoint copied and delivered in ${Date.now() - started} ms; ${reportable(sentByOldProbe)} before it left alone`);

      // Importing the same checkpoint again changes nothing.
      const again = await importCheckpoint(db, file, ['--time-zone', oldHostZone]);
      assert.equal(again.code, 0, again.stderr);
      assert.match(again.stdout, /nothing to do/);
      assert.equal(await queueDepth(db), 0);
    });

    it('says there is nothing to backfill when the old probe ran on past the triggers\' installation', async () => {
      const file = writeCheckpoint(dir, wallClock(Date.now() + HOUR, 'UTC'), protocol, 'datetime.timezone.utc');
      const result = await importCheckpoint(db, file, []);
      assert.equal(result.code, 0, result.stderr);
      assert.match(result.stdout, /\(the time zone stored with it\)/);
      assert.match(result.stdout, /nothing to backfill: .* transfers between the two were reported by both probes/);
      assert.equal(await queueDepth(db), 0);
    });
  });
}

describe('a transfer delivered live whose transaction has surrounding spaces', () => {
  let db: BillingDatabase;
  let collector: CollectorProcess;
  withDatabaseAndCollector('modern', (d, c) => ([db, collector] = [d, c]));

  it('is not sent again by a backfill over its range (one delivery key for it, src/db/delivery-key.ts)', async () => {
    const since = Date.now() - 2 * HOUR;
    let i = 0;
    const generator = new TransferGenerator({ seed: 81, form: 'modern', duplicateShare: 0, p2pShare: 0, noDoorShare: 0, errorShare: 0, now: () => since + 10 * MINUTE + i++ * MINUTE });
    const sim = Array.from({ length: 3 }, () => generator.next());
    const spaced = sim.map((t, n) => ({ ...t, mover: { ...t.mover, transaction: n === 2 ? `\t${t.mover.transaction as string} ` : `  ${t.mover.transaction as string}  ` } }));
    // Live: captured by the trigger, delivered by the probe.
    await writeMessages(messageStream(spaced, 7, 0), { url: db.url, writers: 1, maxTransactionRows: 10, timeZone: ZONE });
    assert.equal(await queueDepth(db), 3, 'the movers captured');
    await pollAndCheck(db, collector);
    assert.equal(await queueDepth(db), 0);
    assert.equal((await collector.stats()).recordsAccepted, 3);

    const result = await backfill(db, ['--since', iso(since), '--until', iso(Date.now())]);
    assert.equal(result.code, 0, result.stdout + result.stderr);
    assert.equal(copiedOf(result), 0, result.stdout);
    assert.match(result.stdout, /skipped 3 already delivered or waiting/);
    await pollAndCheck(db, collector);
    assert.equal((await collector.stats()).recordsAccepted, 3, 'the collector received nothing more');
  });
});

describe('docs/MIGRATING.md', () => {
  it('names only dcache-probe commands and flags that exist', () => {
    const doc = readFileSync(join(__dirname, '..', '..', 'docs', 'MIGRATING.md'), 'utf8');
    const program = buildProgram();
    const problems: string[] = [];
    let mentions = 0;
    for (const match of doc.matchAll(/(?:^|[\s`(])dcache-probe[ \t]+([a-z][^\n|;&#)`]*)/gm)) {
      const words = match[1]!.trim().split(/\s+/);
      const command = program.commands.find((c) => c.name() === words[0]);
      if (!command) {
        problems.push(`command ${words[0]}`);
        continue;
      }
      mentions++;
      const known = new Set(['--help', ...command.options.map((o) => o.long)]);
      for (const flag of words.filter((w) => w.startsWith('--')).map((w) => w.split('=')[0]!)) if (!known.has(flag)) problems.push(`${words[0]} ${flag}`);
    }
    assert.deepEqual(problems, []);
    assert.ok(mentions >= 6, `found ${mentions} command mentions`);
  });
});
