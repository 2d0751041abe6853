/**
 * EXPERIMENT (bench only, not the product): one change to Probe.drain(), to measure a proposed
 * fix for src/probe.ts before anyone makes it.
 *
 * Before 61f9ada a drain worker that claimed fewer than bundleSize rows stopped for the rest of
 * the drain; under a steady load the first short batch left a single worker draining while the
 * backlog grew (see docs/PERFORMANCE.md). Here a worker stops only when its claim comes back
 * empty — what src/probe.ts now does, so against a tree with 61f9ada this compares two equal
 * probes; keep it as the template for the next change to drain().
 */
import * as delivery from '../../src/delivery';
import * as probe from '../../src/probe';

type Anything = any; // eslint-disable-line @typescript-eslint/no-explicit-any

export function applyDrainFix(): void {
  const proto = (probe as Anything).Probe.prototype as Anything;
  proto.drain = async function drain(this: Anything) {
    if (!this.delivery) throw new Error('probe not prepared');
    const total = (delivery as Anything).emptyResult();
    if (typeof this.stoppedByFile === 'function' && this.stoppedByFile()) return total;
    const worker = async (): Promise<void> => {
      while (!this.stopping && !total.unavailable) {
        const r = await this.delivery.deliverBatch(this.abort.signal);
        (probe as Anything).addResults(total, r);
        if (r.claimed > 0) this.account(r);
        if (r.unavailable || r.claimed === 0) return; // the only change: was `r.claimed < bundleSize`
      }
    };
    await Promise.all(Array.from({ length: this.config.pipeline.workers }, worker));
    return total;
  };
}
