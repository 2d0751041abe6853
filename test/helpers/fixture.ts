/**
 * The usual fixtures of a test suite: a fresh billing database (with the probe installed) and a
 * collector process, made before the suite's tests (or each test) and removed after them.
 */
import { after, afterEach, before, beforeEach } from 'node:test';
import type pg from 'pg';
import { createPool } from '../../src/db/pool';
import type { SchemaForm } from '../../src/tools/demo/simulator';
import { startCollector, type CollectorProcess } from './collector';
import { createBillingDatabase, type BillingDatabase } from './database';
import type { ProbeProcess } from './probe';

/** Call inside describe(); `use` receives a fresh billing database and a pool on it (the probe's own settings). */
export function withDatabaseAndPool(form: SchemaForm, use: (db: BillingDatabase, pool: pg.Pool) => void, max = 2): void {
  let db: BillingDatabase | undefined;
  let pool: pg.Pool | undefined;
  before(async () => {
    db = await createBillingDatabase(form);
    pool = createPool({ url: db.url, max });
    use(db, pool);
  });
  after(async () => {
    await pool?.end();
    await db?.drop();
  });
}

/** Call inside describe(); `use` receives the database and collector before the tests run. */
export function withDatabaseAndCollector(form: SchemaForm, use: (db: BillingDatabase, collector: CollectorProcess) => void): void {
  let db: BillingDatabase | undefined;
  let collector: CollectorProcess | undefined;
  before(async () => {
    db = await createBillingDatabase(form);
    collector = await startCollector();
    use(db, collector);
  });
  after(async () => {
    await collector?.stop();
    await db?.drop();
  });
}

/**
 * The per-test form: a fresh database and collector for each test, and the probes it started
 * (push them onto `probes`), continued (in case a test stopped one) and killed after it.
 */
export function eachWithDatabaseCollectorAndProbes(form: SchemaForm, use: (db: BillingDatabase, collector: CollectorProcess, probes: ProbeProcess[]) => void): void {
  let db: BillingDatabase | undefined;
  let collector: CollectorProcess | undefined;
  const probes: ProbeProcess[] = [];
  beforeEach(async () => {
    db = await createBillingDatabase(form);
    collector = await startCollector();
    use(db, collector, probes);
  });
  afterEach(async () => {
    for (const p of probes.splice(0)) {
      p.process.kill('SIGCONT');
      await p.stop('SIGKILL');
    }
    await collector?.stop();
    await db?.drop();
  });
}
