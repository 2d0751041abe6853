/**
 * What `dcache-probe backfill` and `dcache-probe import-checkpoint` do once their options are
 * parsed (they are registered in src/cli/backfill.ts, and load this module only when they run):
 * the options turned into runBackfill's (src/legacy/backfill.ts), signals, and the output.
 */
import type { Config } from '../config/schema';
import { ConfigError } from '../config/schema';
import { checkTimeZone, checkpointInstant, formatPyDatetime, readCheckpointFile, systemTimeZone } from '../legacy/checkpoint';
import { createLogger } from '../logger';
import { checkHistoryBound, formatBackfillResult, formatUtc, parseTimeArg, runBackfill, timeArgOf, type TimeArg } from '../legacy/backfill';

/** Shown under both commands' --help: what "never re-sent" can and cannot promise. */
export const BACKFILL_HELP = `
Rows are copied into the probe's capture queue in chunks ordered by datestamp; the running probe
("dcache-probe run", or "dcache-probe poll --once") delivers them like live rows. Progress is saved
after every chunk: run the same command again to continue an interrupted backfill.

Skipped: pool-to-pool rows, storageinfo rows other than store/restore, and rows the probe has
delivered or still holds (their transaction is in dcache_probe.delivered_key, capture_queue or
quarantine). Delivered keys are remembered for pipeline.dedupWindowHours (48 h by default) only:
a row the probe delivered longer ago than that is not recognised and would be sent again
(byte-identical but for its createTime; GRACC treats it as the same record). Rows the OLD probe
sent are not known at all: do not backfill before its checkpoint (use import-checkpoint).

Exit codes: 0 done, nothing to do, or stopped at --limit; 1 interrupted (SIGINT/SIGTERM, after
the chunk in hand is saved) or failed; 2 invalid usage (e.g. --since beyond --max-history-days).`;

export interface BackfillCommandOptions {
  since?: string;
  until?: string;
  overlap: string;
  maxHistoryDays: string;
  rate: string;
  maxQueue: string;
  chunk: string;
  limit?: string;
  dryRun?: boolean;
  restart?: boolean;
  timeZone?: string;
}

function number(value: string, flag: string, integer = false): number {
  const n = Number(value);
  if (!Number.isFinite(n) || n < 0 || (integer && !Number.isInteger(n))) throw new ConfigError(`${flag} ${value}: expected a ${integer ? 'whole ' : ''}non-negative number`);
  return n;
}

/** Runs either command; returns the exit code (0 done or nothing to do, 1 interrupted). */
export async function backfillCommand(kind: 'backfill' | 'import-checkpoint', options: BackfillCommandOptions, config: Config, file?: string): Promise<number> {
  const print = (line: string) => process.stdout.write(line + '\n');
  const maxHistoryDays = number(options.maxHistoryDays, '--max-history-days');
  const until: TimeArg | undefined = options.until === undefined ? undefined : parseTimeArg(options.until, '--until');
  let since: TimeArg;
  if (kind === 'backfill') {
    since = parseTimeArg(options.since ?? '', '--since');
    checkHistoryBound(since, maxHistoryDays, Date.now());
  } else {
    const zone = checkTimeZone(options.timeZone ?? systemTimeZone());
    const checkpoint = readCheckpointFile(file!);
    const instant = checkpointInstant(checkpoint.datetime, zone);
    const d = checkpoint.datetime;
    print(`checkpoint ${file}: ${checkpoint.format}, datestamp ${formatPyDatetime(d)}, transaction ${JSON.stringify(checkpoint.transaction)}`);
    const how =
      instant.placement === 'aware'
        ? 'the time zone stored with it'
        : `naive local time, read in ${zone}${options.timeZone ? '' : " (this system's zone; --time-zone to change)"}` +
          (instant.placement === 'ambiguous' ? `; the wall time occurs twice there (DST), taken as the ${d.fold ? 'second' : 'first'}` : '') +
          (instant.placement === 'nonexistent' ? '; the wall time does not exist there (DST gap), read with the offset before the change' : '');
    print(`  = ${instant.iso} (${how}): the old probe had read every billing row stamped before this`);
    since = timeArgOf(instant.iso);
    checkHistoryBound(since, maxHistoryDays, Date.now(), 'the checkpoint');
  }

  const controller = new AbortController();
  const onSignal = () => controller.abort();
  process.on('SIGINT', onSignal).on('SIGTERM', onSignal);
  try {
    const dryRun = Boolean(options.dryRun);
    const result = await runBackfill({
      url: config.database.url,
      timeZone: config.database.timeZone,
      queryTimeoutMs: config.database.queryTimeoutSeconds * 1000,
      since,
      until,
      overlapSeconds: number(options.overlap, '--overlap'),
      maxHistoryDays,
      rate: number(options.rate, '--rate'),
      maxQueue: number(options.maxQueue, '--max-queue', true),
      chunkSize: number(options.chunk, '--chunk', true),
      limit: options.limit === undefined ? undefined : number(options.limit, '--limit', true),
      dryRun,
      restart: Boolean(options.restart),
      reportTape: config.pipeline.reportTape,
      dedupWindowHours: config.pipeline.dedupWindowHours,
      log: createLogger(config.log),
      print,
      signal: controller.signal,
      sinceMayFollowUntil: kind === 'import-checkpoint',
    });
    if (result.emptyRange) {
      print(
        `nothing to backfill: the checkpoint (${formatUtc(since.ms)}) is not before the end of the range (${formatUtc(timeArgOf(result.until).ms)}). ` +
          (until
            ? 'Give a later --until, or none.'
            : `The old probe kept running after the triggers were installed (${result.installedAt}): transfers between the two were reported by both probes.`),
      );
      return 0;
    }
    for (const line of formatBackfillResult(result, dryRun)) print(line);
    return result.stoppedBy === 'signal' ? 1 : 0;
  } finally {
    process.off('SIGINT', onSignal).off('SIGTERM', onSignal);
  }
}
