/**
 * EXPERIMENT (bench only, not the product): one change to Probe.requestDrain().
 *
 * A wake-up (NOTIFY, timer) that arrives while a drain cycle is finishing — after its loop has
 * looked at `again` for the last time, while it awaits scheduleDoorGraceWake() — only sets
 * `again`, which nobody reads any more. The notification that was spent on it is not repeated
 * (the listener is not armed again until the next cycle), so the rows it announced wait for the
 * next poll (pollIntervalSeconds, 30 s). Here the cycle's end looks at `again` once more.
 */
import * as probe from '../../src/probe';

type Anything = any; // eslint-disable-line @typescript-eslint/no-explicit-any

export function applyWakeFix(): void {
  const proto = (probe as Anything).Probe.prototype as Anything;
  proto.requestDrain = function requestDrain(this: Anything): void {
    if (this.stopping) return;
    if (this.running) {
      this.again = true;
      return;
    }
    this.running = this.runCycles().finally(() => {
      this.running = null;
      if (this.again && !this.stopping) this.requestDrain(); // the only change
    });
  };
}
