/**
 * The ProbeDetails handshake the old Gratia probe sent at start: who we are, which software,
 * which form of the billing schema. Sent once per start; a failure is logged, never fatal.
 */
import type pg from 'pg';
import type { Config } from '../config/schema';
import { billingSchemaForm } from '../db/installation';
import { errorMessage } from '../lib';
import type { Logger } from '../logger';
import { multiupdateForm } from '../record/envelope';
import type { CollectorSender } from '../pipeline/sender';
import { PROBE_VERSION } from '../version';
import { probeDetailsXml } from '../record/xml';

/** The ProbeDetails record of this probe, for a billing schema of this form. */
export function handshakeXml(probe: Config['probe'], billingForm: string, nowMs: number): string {
  return probeDetailsXml({
    probeName: probe.name,
    siteName: probe.siteName,
    grid: probe.grid,
    createTimeMs: nowMs,
    software: [
      { name: 'dcache-transfer-probe', version: PROBE_VERSION, type: 'component' },
      { name: 'Node.js', version: process.versions.node, type: 'runtime' },
      { name: 'dCache billing database', version: billingForm, type: 'input' },
    ],
  });
}

/** Sends the ProbeDetails handshake; a failure is logged, never fatal. */
export async function sendHandshake(pool: pg.Pool, sender: CollectorSender, probe: Config['probe'], log: Logger, signal: AbortSignal): Promise<void> {
  try {
    const form = await billingSchemaForm(pool);
    const outcome = await sender.send(multiupdateForm([handshakeXml(probe, form, Date.now())], probe.name), signal);
    if (outcome.kind === 'accepted') log.info('handshake (ProbeDetails) accepted', { billingSchema: form });
    else log.warn('handshake (ProbeDetails) not accepted; delivery goes on', { answer: outcome.answer });
  } catch (err) {
    log.warn('could not send the handshake (ProbeDetails)', { error: errorMessage(err) });
  }
}
