/**
 * The fault test's schedule: which fault comes when, decided by a seeded PRNG alone, so that a
 * seed printed by a failing run replays the same faults at the same moments (relative to the
 * start of the fault phase; a fault that takes longer than the gap to the next one delays it).
 *
 * Kinds are dealt from a shuffled deck of all kinds, so each kind comes once in every round of
 * nine faults (a one-minute run sees every kind); the moments are random gaps of a few seconds.
 */
import { rng } from '../../src/tools/demo/simulator';

export const FAULT_KINDS = [
  'postgres-fast-restart',
  'postgres-immediate-restart',
  'terminate-probe-connections',
  'probe-kill',
  'probe-stop',
  'collector-kill',
  'collector-503',
  'collector-reset',
  'collector-slow',
] as const;

export type FaultKind = (typeof FAULT_KINDS)[number];

export interface PlannedFault {
  /** 1, 2, … in schedule order. */
  n: number;
  /** When it starts, ms after the fault phase began. */
  atMs: number;
  kind: FaultKind;
  /** Which probe of the pair (probe faults). */
  probe: 0 | 1;
  /** How long the server, probe or collector stays down before it is started again. */
  downMs: number;
  /** How long a window fault lasts (probe stopped, collector answering 503 / resetting / slowly). */
  holdMs: number;
  /** collector-slow: how long each answer takes (beyond the probe's 2 s timeout, a re-send). */
  delayMs: number;
}

/** Gaps between fault moments, ms. */
export const GAP_MS = { min: 1000, max: 4000 } as const;

export const PROBE_NAMES = ['A', 'B'] as const;

function shuffled<T>(items: readonly T[], random: () => number): T[] {
  const deck = [...items];
  for (let i = deck.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    [deck[i], deck[j]] = [deck[j]!, deck[i]!];
  }
  return deck;
}

/** Every fault of a fault phase of `durationMs`, from the seed alone. */
export function faultSchedule(seed: number, durationMs: number): PlannedFault[] {
  const random = rng(seed);
  const between = (lo: number, hi: number) => Math.round(lo + random() * (hi - lo));
  const faults: PlannedFault[] = [];
  let deck: FaultKind[] = [];
  for (let at = between(GAP_MS.min, GAP_MS.max); at < durationMs; at += between(GAP_MS.min, GAP_MS.max)) {
    if (deck.length === 0) deck = shuffled(FAULT_KINDS, random);
    faults.push({
      n: faults.length + 1,
      atMs: at,
      kind: deck.pop()!,
      probe: random() < 0.5 ? 0 : 1,
      downMs: between(0, 1500),
      holdMs: between(1000, 4000),
      delayMs: between(300, 3000),
    });
  }
  return faults;
}

/** The fault in words, for the log a person reads while the test runs. */
export function describeFault(f: PlannedFault): string {
  const probe = `probe ${PROBE_NAMES[f.probe]}`;
  const s = (ms: number) => `${(ms / 1000).toFixed(1)} s`;
  switch (f.kind) {
    case 'postgres-fast-restart':
      return `PostgreSQL restart (pg_ctl -m fast), down ${s(f.downMs)}`;
    case 'postgres-immediate-restart':
      return `PostgreSQL crash restart (pg_ctl -m immediate), down ${s(f.downMs)}`;
    case 'terminate-probe-connections':
      return "pg_terminate_backend of every 'dcache-probe%' connection";
    case 'probe-kill':
      return `SIGKILL ${probe}, restarted after ${s(f.downMs)}`;
    case 'probe-stop':
      return `SIGSTOP ${probe}, SIGCONT after ${s(f.holdMs)}`;
    case 'collector-kill':
      return `collector killed (SIGKILL), restarted after ${s(f.downMs)}`;
    case 'collector-503':
      return `collector answers 503 for ${s(f.holdMs)}`;
    case 'collector-reset':
      return `collector resets connections for ${s(f.holdMs)}`;
    case 'collector-slow':
      return `collector answers after ${s(f.delayMs)} for ${s(f.holdMs)}`;
  }
}

/**
 * The seed: the flag's value, else DCACHE_PROBE_CHAOS_SEED, else a fresh random one. A bad
 * value is refused with where it came from.
 */
export function chaosSeed(flag: string | undefined, env: NodeJS.ProcessEnv = process.env): number {
  const [value, origin] = flag !== undefined ? [flag, 'flag --seed'] : [env.DCACHE_PROBE_CHAOS_SEED, 'environment variable DCACHE_PROBE_CHAOS_SEED'];
  if (value === undefined || value === '') return Math.floor(Math.random() * 2 ** 31);
  if (!/^\d+$/.test(value.trim()) || Number(value) >= 2 ** 32) throw new Error(`${origin}: "${value}" is not a seed (an integer from 0 to 4294967295)`);
  return Number(value);
}
