/**
 * The usual fixture of a test suite: a fresh billing database (with the probe installed) and a
 * collector process, made before the suite's tests and removed after them.
 */
import { after, before } from 'node:test';
import type { SchemaForm } from '../../src/demo/simulator';
import { startCollector, type CollectorProcess } from './collector';
import { createBillingDatabase, type BillingDatabase } from './database';

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
