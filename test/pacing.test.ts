/**
 * The good citizen and the rows/s limit (src/pipeline/pacing.ts): the controller's decisions
 * from scripted samples, the Pacer run on a simulated clock against a simulated dCache (nothing
 * here depends on speed: time is the test's own), its settings, and the capture sequence it
 * reads, on a real database.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type pg from 'pg';
import { loadConfig } from '../src/config/schema';
import { capturedCount } from '../src/db/captured-count';
import { emptyResult, type BatchResult } from '../src/pipeline/delivery';
import { PACING, Pacer, bucketWait, decide, initialState, isBehind, nextDuty, pauseMs, step, type PacingState } from '../src/pipeline/pacing';
import type { BillingDatabase } from './helpers/database';
import { withDatabaseAndPool } from './helpers/fixture';
import { queueDepth, simulate, write } from './helpers/scenario';

const REQUIRED_ENV = {
  DCACHE_PROBE_DB_URL: 'postgres://probe:secret@db.example.org/billing',
  DCACHE_PROBE_COLLECTOR_URL: 'https://gracc.example.org',
  DCACHE_PROBE_SITE_NAME: 'EXAMPLE_SE',
};

/** A batch whose rows waited `ageMs` (claimed `rows`). */
function batch(rows: number, ageMs: number): BatchResult {
  return { ...emptyResult(), claimed: rows, delivered: rows, latenciesMs: Array<number>(rows).fill(ageMs) };
}

/**
 * One worker draining a backlog against a simulated dCache on a simulated clock: dCache inserts
 * `rate(working)` rows/s, working meaning a batch of ours is in flight; each batch takes
 * `batchMs`. Returns the pacer and what happened.
 */
async function simulateDrain(options: { seconds: number; rate: (working: boolean) => number; batchMs?: number; goodCitizen?: boolean; maxRowsPerSecond?: number; rowsPerBatch?: number; ageMs?: number }) {
  let now = 0;
  let count = 0;
  let working = false;
  const advance = (ms: number) => {
    count += (options.rate(working) * ms) / 1000;
    now += ms;
  };
  const pacer = new Pacer({
    goodCitizen: options.goodCitizen ?? true,
    maxRowsPerSecond: options.maxRowsPerSecond ?? 0,
    readCount: async () => Math.floor(count),
    now: () => now,
    sleep: async (ms) => advance(ms),
  });
  let claims = 0;
  let rows = 0;
  let workMs = 0;
  const duties: number[] = [];
  while (now < options.seconds * 1000) {
    assert.equal(await pacer.beforeClaim(() => false), true);
    working = true;
    advance(options.batchMs ?? 50);
    workMs += options.batchMs ?? 50;
    working = false;
    claims++;
    rows += options.rowsPerBatch ?? 500;
    pacer.afterBatch(batch(options.rowsPerBatch ?? 500, options.ageMs ?? 60_000));
    duties.push(pacer.status().duty);
  }
  return { pacer, claims, rows, elapsedMs: now, workShare: workMs / now, duties };
}

describe('the pacing controller (pure)', () => {
  it('halves the duty when the rate while working is below 0.9 of the rate while pausing, else raises it by a step', () => {
    assert.equal(nextDuty(1, 800, 1000), 0.5);
    assert.equal(nextDuty(0.5, 899, 1000), 0.25);
    assert.equal(nextDuty(PACING.minDuty, 0, 1000), PACING.minDuty, 'never below the lowest duty');
    assert.equal(nextDuty(0.5, 950, 1000), 0.6);
    assert.equal(nextDuty(1, 1000, 1000), 1, 'never above full');
  });

  it('works a duty of the period, waits for the batches in flight, pauses for the rest of the time it really worked, and judges the two rates', () => {
    let s: PacingState = { ...initialState(), duty: 0.5 };
    assert.deepEqual(decide(s, 0, 0), { kind: 'sample' });
    s = step(s, { atMs: 0, count: 0 });
    assert.deepEqual(decide(s, 499, 1), { kind: 'go' }, 'within the work phase');
    assert.deepEqual(decide(s, 500, 1), { kind: 'sample' }, 'the work phase is over');
    s = step(s, { atMs: 500, count: 300 });
    assert.equal(s.phase.kind, 'pause');
    assert.deepEqual(decide(s, 520, 1), { kind: 'wait-for-batches' }, 'a batch is still in flight');
    assert.deepEqual(decide(s, 600, 0), { kind: 'sample' }, 'the last batch ended: the work ends, the pause is measured from here');
    s = step(s, { atMs: 600, count: 360 }); // 600 rows/s while working (0–600 ms)
    assert.deepEqual(decide(s, 700, 0), { kind: 'wait', ms: 500 }, 'worked 600 ms at duty 0.5: pause 600 ms');
    s = step(s, { atMs: 1200, count: 960 }); // 1000 rows/s while pausing
    assert.equal(s.duty, 0.25);
    assert.equal(s.phase.kind, 'work');
    assert.deepEqual(decide(s, 1449, 0), { kind: 'go' });
    assert.deepEqual(decide(s, 1450, 0), { kind: 'sample' });
  });

  it('pauses at least minPauseMs (the pause rate needs a window) and at most maxPauseMs', () => {
    assert.equal(pauseMs(1, 1400), PACING.minPauseMs);
    assert.equal(pauseMs(0.25, 400), 1200);
    assert.equal(pauseMs(PACING.minDuty, 2000), PACING.maxPauseMs);
  });

  it('at full duty and calm, doubles the work phase up to 8 periods (the measuring pauses cost less)', () => {
    let s: PacingState = step(initialState(), { atMs: 0, count: 0 });
    const lengths: number[] = [];
    let at = 0;
    for (let i = 0; i < 6; i++) {
      assert.equal(s.phase.kind, 'work');
      const until = s.phase.kind === 'work' ? s.phase.untilMs : NaN;
      lengths.push(until - at);
      s = step(s, { atMs: until, count: until });
      s = step(s, { atMs: until, count: until });
      at = until + PACING.minPauseMs;
      s = step(s, { atMs: at, count: at });
    }
    assert.deepEqual(lengths, [1000, 2000, 4000, 8000, 8000, 8000]);
    s = step(s, { atMs: at + 8000, count: at + 4000 }); // our work halves dCache's rate
    s = step(s, { atMs: at + 8000, count: at + 4000 });
    s = step(s, { atMs: at + 8100, count: at + 4100 });
    assert.deepEqual([s.duty, s.calm], [0.5, 0]);
  });

  it('raises the duty back when the rates are alike', () => {
    let s: PacingState = step({ ...initialState(), duty: 0.5 }, { atMs: 0, count: 0 });
    s = step(s, { atMs: 500, count: 500 });
    s = step(s, { atMs: 500, count: 500 });
    s = step(s, { atMs: 1000, count: 1000 });
    assert.equal(s.duty, 0.6);
  });

  it('does not pause when dCache is idle (almost no inserts while working), and goes back to full duty', () => {
    let s: PacingState = step({ ...initialState(), duty: 0.25 }, { atMs: 0, count: 100 });
    s = step(s, { atMs: 250, count: 102 });
    s = step(s, { atMs: 260, count: 102 }); // 8 rows/s
    assert.equal(s.phase.kind, 'work');
    assert.equal(s.duty, 1);
    assert.deepEqual(decide(s, 1249, 0), { kind: 'go' });
  });

  it('starts afresh after a long time without claims (no drain ran: that was not work)', () => {
    let s: PacingState = step(initialState(), { atMs: 0, count: 0 });
    s = step(s, { atMs: 60_000, count: 500_000 });
    assert.equal(s.phase.kind, 'work');
    assert.equal(s.duty, 1);
  });

  it('is behind when even the youngest row of the batch waited longer than behindMs', () => {
    assert.equal(isBehind(batch(10, PACING.behindMs + 1)), true);
    assert.equal(isBehind({ ...batch(10, 60_000), latenciesMs: [60_000, 40] }), false, 'live rows: keeping up');
    assert.equal(isBehind(emptyResult()), false);
  });

  it('refills the bucket at the limit, one second deep, and waits out a debt', () => {
    assert.deepEqual(bucketWait({ tokens: 0, atMs: 0 }, 500, 1000), { bucket: { tokens: 500, atMs: 500 }, waitMs: 0 });
    assert.deepEqual(bucketWait({ tokens: 900, atMs: 0 }, 5000, 1000).bucket.tokens, 1000);
    assert.deepEqual(bucketWait({ tokens: -1500, atMs: 0 }, 500, 1000), { bucket: { tokens: -1000, atMs: 500 }, waitMs: 1000 });
  });
});

describe('the pacer on a simulated clock', () => {
  it('yields to a dCache that its work slows down: the duty falls to its lowest and dCache keeps almost all its rate', async () => {
    const r = await simulateDrain({ seconds: 60, rate: (working) => (working ? 600 : 1000) });
    assert.equal(r.pacer.status().duty, PACING.minDuty);
    assert.ok(r.workShare < 0.25, `worked ${r.workShare}`);
    assert.ok(r.pacer.status().yieldedMs > 40_000);
  });

  it('runs at full duty when its work does not change the insert rate (a load fixed by dCache, live traffic)', async () => {
    const r = await simulateDrain({ seconds: 60, rate: () => 5000 });
    assert.ok(r.duties.slice(-100).every((d) => d === 1), 'full duty');
    // The measurement pauses only: minPauseMs per period.
    assert.ok(r.workShare > 0.85, `worked ${r.workShare}`);
  });

  it('never pauses while dCache is idle', async () => {
    const r = await simulateDrain({ seconds: 30, rate: () => 0 });
    assert.equal(r.pacer.status().yieldedMs, 0);
    assert.equal(r.workShare, 1);
  });

  it('never pauses while it keeps up (the rows it delivers are fresh), however its work slows dCache', async () => {
    const r = await simulateDrain({ seconds: 30, rate: (working) => (working ? 100 : 1000), ageMs: 50 });
    assert.equal(r.pacer.status().yieldedMs, 0);
    assert.equal(r.workShare, 1);
  });

  it('never pauses when goodCitizen is off', async () => {
    const r = await simulateDrain({ seconds: 30, rate: (working) => (working ? 100 : 1000), goodCitizen: false });
    assert.equal(r.pacer.status().yieldedMs, 0);
    assert.equal(r.pacer.status().duty, 1);
    assert.equal(r.workShare, 1);
  });

  it('claims at most maxRowsPerSecond on average (one second of burst), with or without the good citizen', async () => {
    for (const goodCitizen of [false, true]) {
      const r = await simulateDrain({ seconds: 20, rate: () => 0, goodCitizen, maxRowsPerSecond: 1000, rowsPerBatch: 500, batchMs: 10 });
      // The bucket starts full (1,000 rows); every further row waited for its token.
      assert.ok(r.rows <= 1000 + (r.elapsedMs / 1000) * 1000 + 500, `${r.rows} rows in ${r.elapsedMs} ms`);
      assert.ok(r.rows >= (r.elapsedMs / 1000) * 1000 - 500, `the limit is reached: ${r.rows} rows in ${r.elapsedMs} ms`);
      assert.ok(r.pacer.status().limitedMs > 0);
    }
  });

  it('lets two workers through one pause together, and measures the pause once both batches ended', async () => {
    let now = 0;
    let reads = 0;
    const pacer = new Pacer({ goodCitizen: true, maxRowsPerSecond: 0, readCount: async () => (reads++, now), now: () => now, sleep: async (ms) => void (now += ms) });
    assert.equal(await pacer.beforeClaim(() => false), true);
    assert.equal(await pacer.beforeClaim(() => false), true);
    now = 1000; // end of a full-duty work phase; 1,000 rows/s all along
    pacer.afterBatch(batch(10, 60_000));
    let second = false;
    const waiting = pacer.beforeClaim(() => false).then(() => (second = true));
    await new Promise((resolve) => setImmediate(resolve));
    assert.equal(second, false, 'held while the other batch is in flight');
    pacer.afterBatch(batch(10, 60_000));
    await waiting;
    assert.equal(pacer.status().duty, 1, 'no difference between the rates: full duty');
    assert.ok(reads >= 4);
  });

  it('a stopping probe ends a wait without a claim', async () => {
    let now = 0;
    const pacer = new Pacer({ goodCitizen: false, maxRowsPerSecond: 10, readCount: async () => 0, now: () => now, sleep: async (ms) => void (now += ms) });
    assert.equal(await pacer.beforeClaim(() => false), true);
    pacer.afterBatch(batch(100, 0)); // a debt of 90 rows (the bucket starts with 10)
    let stop = false;
    const result = pacer.beforeClaim(() => {
      if (now > 0) stop = true;
      return stop;
    });
    assert.equal(await result, false);
  });
});

describe('pacing settings', () => {
  it('has the good citizen on and no limit by default; both can be set', () => {
    const config = loadConfig({ env: REQUIRED_ENV });
    assert.equal(config.pipeline.goodCitizen, true);
    assert.equal(config.pipeline.maxRowsPerSecond, 0);
    const set = loadConfig({ env: { ...REQUIRED_ENV, DCACHE_PROBE_GOOD_CITIZEN: 'off' }, flags: { 'pipeline.maxRowsPerSecond': '2500' } });
    assert.equal(set.pipeline.goodCitizen, false);
    assert.equal(set.pipeline.maxRowsPerSecond, 2500);
  });

  it('refuses a negative limit and a goodCitizen that is not true/false', () => {
    assert.throws(() => loadConfig({ env: REQUIRED_ENV, flags: { 'pipeline.maxRowsPerSecond': '-1' } }), /pipeline\.maxRowsPerSecond/);
    assert.throws(() => loadConfig({ env: { ...REQUIRED_ENV, DCACHE_PROBE_GOOD_CITIZEN: 'sometimes' } }), /pipeline\.goodCitizen/);
  });
});

describe('the capture sequence the pacer reads (real PostgreSQL)', () => {
  let db: BillingDatabase;
  let pool: pg.Pool;
  withDatabaseAndPool('modern', (d, p) => ((db = d), (pool = p)));

  it("grows by one per row dCache's inserts queue", async () => {
    const before = await capturedCount(pool);
    const depth0 = await queueDepth(db);
    await write(db, simulate(40, 5));
    const queued = (await queueDepth(db)) - depth0;
    assert.ok(queued > 0);
    assert.equal((await capturedCount(pool)) - before, queued);
  });

  it('is what the pacer reads: a pacer on the real sequence sees dCache idle and does not pause', async () => {
    let now = 0;
    const pacer = new Pacer({ goodCitizen: true, maxRowsPerSecond: 0, readCount: () => capturedCount(pool), now: () => now, sleep: async (ms) => void (now += ms) });
    for (let i = 0; i < 30; i++) {
      assert.equal(await pacer.beforeClaim(() => false), true);
      now += 100;
      pacer.afterBatch(batch(500, 60_000));
    }
    assert.deepEqual(pacer.status(), { goodCitizen: true, duty: 1, yieldedMs: 0, limitedMs: 0 });
  });
});
