/** What a bench run measures, and the shape of its raw results (bench/results/*.json). */
import type { Acceptance, CopyFloor } from './baselines';
import type { CatchupRun } from './catchup';
import type { CostPhase, IdleCatchup } from './cost';
import type { EncodeResult } from './encode';
import type { LatencyRun } from './latency';
import type { MemoryRun } from './memory';
import type { DaemonStop } from './lib/proc';
import type { ProfileSummary } from './lib/profile';

export const ALL_SECTIONS = ['catchup', 'sweep', 'latency', 'cost', 'encode', 'experiments', 'x-encode', 'x-triggers', 'x-capture', 'memory', 'x-narrow', 'citizen'] as const;
export type Section = (typeof ALL_SECTIONS)[number];

export interface Plan {
  mode: 'quick' | 'full';
  sections: Section[];
  /** Backlog sizes of the catch-up runs. */
  sizes: number[];
  /** Repetitions of each measurement (medians and spread are over these). */
  runs: number;
  /** Size of the bundle-size × workers sweep (the first catch-up size: its default runs count). */
  sweepSize: number;
  /** [bundleSize, workers, repetitions] */
  sweep: [number, number, number][];
  latencyRates: number[];
  latencyWarmupS: number;
  latencyWindowS: number;
  latencyRuns: number;
  /** Transfers already in the billing tables before the live runs (a billing database has history). */
  historyRows: number;
  costShapes: number[];
  costRounds: number;
  costWarmupS: number;
  costWindowS: number;
  /** Records in the collector acceptance baseline. */
  acceptanceRecords: number;
  /** Profile one catch-up run (probe and collector) and, in full runs, one live run. */
  profile: boolean;
  /** Backlog of the experiments' catch-up A/B. */
  experimentSize: number;
  /** Backlogs of the memory section (`--sections memory`): daemon and poll --once, flags and none. */
  memorySizes: number[];
  /** The good citizen (--sections citizen): backlog restored before each phase, warm-up (the pacer settles), window. */
  citizenBacklog: number;
  citizenWarmupS: number;
  citizenWindowS: number;
}

export function makePlan(quick: boolean, options: { runs?: number; sections?: Section[]; profile?: boolean }): Plan {
  const runs = options.runs ?? 3;
  if (quick) {
    return {
      mode: 'quick',
      sections: options.sections ?? ['catchup', 'sweep', 'latency', 'cost', 'encode'],
      sizes: [20_000, 40_000],
      runs,
      sweepSize: 20_000,
      sweep: [[100, 2, 1], [2000, 2, 1], [500, 4, 1]],
      latencyRates: [1000, 5000],
      latencyWarmupS: 2,
      latencyWindowS: 6,
      latencyRuns: 1,
      historyRows: 30_000,
      costShapes: [2, 100],
      costRounds: Math.max(2, Math.min(runs, 2)),
      costWarmupS: 0.5,
      costWindowS: 1.5,
      acceptanceRecords: 10_000,
      profile: options.profile ?? false,
      experimentSize: 20_000,
      memorySizes: [50_000, 150_000],
      citizenBacklog: 60_000,
      citizenWarmupS: 12,
      citizenWindowS: 8,
    };
  }
  return {
    mode: 'full',
    sections: options.sections ?? ['catchup', 'sweep', 'latency', 'cost', 'encode'],
    sizes: [100_000, 300_000, 1_000_000],
    runs,
    sweepSize: 100_000,
    sweep: [
      ...[100, 250, 1000, 2000].map((b): [number, number, number] => [b, 2, 2]),
      [500, 1, 2],
      [500, 4, 2],
      [250, 4, 1],
    ],
    latencyRates: [1000, 5000],
    latencyWarmupS: 5,
    latencyWindowS: 30,
    latencyRuns: runs,
    historyRows: 200_000,
    costShapes: [2, 100],
    costRounds: runs,
    costWarmupS: 1,
    costWindowS: 5,
    acceptanceRecords: 50_000,
    profile: options.profile ?? true,
    experimentSize: 100_000,
    memorySizes: [100_000, 300_000, 1_000_000],
    citizenBacklog: 200_000,
    citizenWarmupS: 15,
    citizenWindowS: 15,
  };
}

export interface Results {
  startedAt: string;
  finishedAt?: string;
  plan: Plan;
  machine: { cpus: number; node: string; postgres?: string; autovacuum?: string; sharedBuffers?: string; gitHead?: string; srcChanges?: number };
  catchup: CatchupRun[];
  copyFloor: (CopyFloor & { size: number; afterRun: number })[];
  acceptance: (Acceptance & { afterSize: number; afterRun: number })[];
  /** Diagnosis: the probe against the null sink. */
  sink: CatchupRun[];
  /** In run order (seq); every other run is the default, for pairing. */
  sweep: (CatchupRun & { seq?: number })[];
  /** Diagnosis: catch-up while doorinfo has no planner statistics. */
  unanalyzed: CatchupRun[];
  latency: LatencyRun[];
  cost: CostPhase[];
  /** The good citizen: writers during a catch-up (and off/capture), and the idle catch-up on/off. */
  citizen?: CostPhase[];
  citizenIdle?: IdleCatchup[];
  encode: EncodeResult | null;
  /** Experiments: catch-up with the string-built encoder, against the collector and the sink. */
  experimentCatchup: (CatchupRun & { collector: 'collector' | 'sink'; pair: number })[];
  /** Experiments: variants of the capture trigger (bench database only). */
  experimentCost: CostPhase[];
  /** `--sections x-capture`: the 006 capture against ours (007), paired. */
  captureCost?: CostPhase[];
  /** `--sections memory`: peak RSS per backlog, daemon and poll --once; `memoryDiagnosis`: the same runs with the sampler preloaded. */
  memory?: MemoryRun[];
  memoryDiagnosis?: MemoryRun[];
  /** `--sections x-narrow`: narrower copies than ours, the copy alone, paired. */
  narrowCost?: CostPhase[];
  profiles: Record<string, ProfileSummary>;
  daemonStops: DaemonStop[];
}
