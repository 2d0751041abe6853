/**
 * The probe's start-up checks against the database: is our schema installed at the version
 * this build expects, on which billing schema, can the capture work; and which form of
 * dCache's billing schema this is (for the handshake). The SQL of these checks lives here.
 */
import type pg from 'pg';
import { installedBillingSchema, requireInstalled } from './migrations';
import { withClient } from './pool';
import { captureHealth } from './status';

export interface Installation {
  billingSchema: string;
  captureProblems: string[];
  captureWarnings: string[];
}

/** Checks that the probe's schema is installed at the version this build expects. */
export async function checkInstallation(pool: pg.Pool): Promise<Installation> {
  return withClient(pool, async (client) => {
    await requireInstalled(client);
    const billingSchema = (await installedBillingSchema(client))!;
    const health = await captureHealth(client, billingSchema);
    return { billingSchema, captureProblems: health.problems, captureWarnings: health.warnings };
  });
}

/** The columns of billinginfo that tell the forms of the billing schema apart. */
interface BillingColumns {
  datestamp: string | null;
  owner: boolean;
  p2p: boolean;
}

/** The form, in words, that these columns of billinginfo make. */
export function billingFormOf(r: BillingColumns | undefined): string {
  if (!r?.datestamp) return 'unknown';
  if (r.datestamp === 'timestamp without time zone') return 'legacy (pre-Liquibase, timestamp without time zone)';
  if (r.owner) return 'modern (dCache >= 2.16)';
  return r.p2p ? 'dCache 2.7 - 2.15' : 'dCache < 2.7';
}

/** Which form of the billing schema this is, in words (for the handshake and status). */
export async function billingSchemaForm(pool: pg.Pool): Promise<string> {
  return withClient(pool, async (client) => {
    const schema = await installedBillingSchema(client);
    const { rows } = await client.query<BillingColumns>(
      `SELECT max(data_type) FILTER (WHERE column_name = 'datestamp') AS datestamp,
              bool_or(column_name = 'owner') AS owner, bool_or(column_name = 'p2p') AS p2p
         FROM information_schema.columns
        WHERE table_schema = $1 AND table_name = 'billinginfo'`,
      [schema],
    );
    return billingFormOf(rows[0]);
  });
}

/** The billing schema the triggers were installed on; null when the probe is not installed. */
export async function billingSchemaOf(pool: pg.Pool): Promise<string | null> {
  return withClient(pool, installedBillingSchema);
}
