/**
 * The old Gratia dCache-transfer probe's checkpoint file (`chkpt_dcache_xfer_DoNotDelete` in its
 * WorkingFolder): a pickled `[datetime, transaction]`. Every billing row with a datestamp before
 * that datetime had been read (and sent) by the old probe; rows from it on had not.
 *
 * The old probe compared naive datetimes with `datetime.now()` and wrote them into SQL as
 * text, so a naive checkpoint is wall-clock time of the old probe's host. An aware datetime
 * (time zone attached) is taken as it is.
 */
import { readFileSync } from 'node:fs';
import { ConfigError } from '../config/schema';
import { DAY_MS, errorMessage } from '../lib';
import { isBytes, isDatetime, unpickle, UnpicklingError, type PyDatetime, type PyValue } from './pickle';

export interface OldCheckpoint {
  datetime: PyDatetime;
  /** The transaction saved next to it (the old probe always wrote ''), or null. */
  transaction: string | null;
  /** "pickle protocol 2", "pickle protocol 0 or 1". */
  format: string;
}

/** Reads and checks a checkpoint file; a file that is not one is a usage error (exit 2). */
export function readCheckpointFile(file: string): OldCheckpoint {
  let data: Buffer;
  try {
    data = readFileSync(file);
  } catch (err) {
    throw new ConfigError(`${file}: cannot read the checkpoint file: ${errorMessage(err)}`);
  }
  try {
    return parseCheckpoint(data);
  } catch (err) {
    if (err instanceof UnpicklingError || err instanceof CheckpointFormatError) {
      throw new ConfigError(`${file}: not a checkpoint of the old dCache-transfer probe: ${err.message}`);
    }
    throw err;
  }
}

class CheckpointFormatError extends Error {}

export function parseCheckpoint(data: Buffer): OldCheckpoint {
  const value = unpickle(data);
  const format = data[0] === 0x80 ? `pickle protocol ${data[1]}` : 'pickle protocol 0 or 1';
  let date: PyValue | undefined;
  let transaction: PyValue | undefined;
  if (Array.isArray(value)) [date, transaction] = value; // [datetime, txn] (also a tuple)
  else if (value instanceof Map) [date, transaction] = [value.get('date'), value.get('transaction')]; // newer Gratia checkpoints
  else date = value;
  if (date === undefined || date === null || !isDatetime(date)) {
    throw new CheckpointFormatError(`expected [datetime, transaction], found ${describe(value)}`);
  }
  return { datetime: date, transaction: textOf(transaction), format };
}

function textOf(v: PyValue | undefined): string | null {
  if (v === undefined || v === null) return null;
  if (typeof v === 'string') return v;
  if (isBytes(v)) return v.bytes.toString('utf8');
  if (typeof v === 'number' || typeof v === 'bigint' || typeof v === 'boolean') return String(v);
  return null;
}

function describe(v: PyValue): string {
  if (Array.isArray(v)) return `a list of ${v.length} items`;
  if (v instanceof Map) return `a dict with keys ${[...v.keys()].join(', ')}`;
  if (v === null) return 'None';
  if (typeof v === 'object') return `a ${v.type}`;
  return `a ${typeof v}`;
}

const pad = (n: number, width = 2) => String(n).padStart(width, '0');

/** The datetime as Python's str() shows it: 2024-03-14 11:00:00.123456+01:00. */
export function formatPyDatetime(d: PyDatetime): string {
  const base = `${pad(d.year, 4)}-${pad(d.month)}-${pad(d.day)} ${pad(d.hour)}:${pad(d.minute)}:${pad(d.second)}${d.microsecond ? '.' + pad(d.microsecond, 6) : ''}`;
  if (!d.tz) return base;
  if (d.tz.kind === 'zone') return `${base} [${d.tz.zone}]`;
  const sign = d.tz.offsetSeconds < 0 ? '-' : '+';
  const abs = Math.abs(d.tz.offsetSeconds);
  return `${base}${sign}${pad(Math.floor(abs / 3600))}:${pad(Math.floor((abs % 3600) / 60))}`;
}

/** Throws a usage error unless `zone` is an IANA time zone this runtime knows. */
export function checkTimeZone(zone: string, flag = '--time-zone'): string {
  try {
    return new Intl.DateTimeFormat('en-US', { timeZone: zone }).resolvedOptions().timeZone;
  } catch {
    throw new ConfigError(`${flag} ${zone}: not a time zone (use an IANA name such as Europe/Berlin, America/Chicago or UTC)`);
  }
}

export function systemTimeZone(): string {
  return Intl.DateTimeFormat().resolvedOptions().timeZone;
}

/** The zone's offset from UTC (ms) at an instant. */
export function zoneOffsetMs(zone: string, epochMs: number): number {
  const whole = Math.floor(epochMs / 1000) * 1000;
  const parts = Object.fromEntries(
    new Intl.DateTimeFormat('en-US', { timeZone: zone, hourCycle: 'h23', year: 'numeric', month: 'numeric', day: 'numeric', hour: 'numeric', minute: 'numeric', second: 'numeric', era: 'short' })
      .formatToParts(new Date(whole))
      .map((p) => [p.type, p.value]),
  );
  const year = parts.era === 'BC' || parts.era === 'B' ? 1 - Number(parts.year) : Number(parts.year);
  const wall = Date.UTC(year, Number(parts.month) - 1, Number(parts.day), Number(parts.hour), Number(parts.minute), Number(parts.second));
  return wall - whole;
}

export interface Instant {
  /** Epoch milliseconds (the microseconds below them are in `iso`). */
  ms: number;
  /** RFC 3339 in UTC with microseconds, e.g. 2024-03-14T16:00:00.123456Z. */
  iso: string;
  /** How a naive time was placed: 'unique', or the DST case that needed a choice. */
  placement: 'unique' | 'ambiguous' | 'nonexistent' | 'aware';
}

/**
 * A wall-clock time in an IANA zone as an instant. In the autumn's repeated hour, `fold` 0 picks
 * the first (earlier) of the two instants, as Python does; in the spring's skipped hour, the
 * offset before the change is used (Python's rule for fold 0).
 */
export function wallTimeToInstant(d: PyDatetime, zone: string): Instant {
  const wall = Date.UTC(d.year, d.month - 1, d.day, d.hour, d.minute, d.second, Math.floor(d.microsecond / 1000));
  if (d.year < 100) throw new ConfigError('a checkpoint before the year 100 is not a real checkpoint');
  const before = zoneOffsetMs(zone, wall - DAY_MS);
  const after = zoneOffsetMs(zone, wall + DAY_MS);
  const candidates = [...new Set([wall - before, wall - after])].filter((t) => zoneOffsetMs(zone, t) === wall - t).sort((a, b) => a - b);
  let ms: number;
  let placement: Instant['placement'];
  if (candidates.length === 0) {
    ms = wall - before;
    placement = 'nonexistent';
  } else if (candidates.length === 2) {
    ms = candidates[d.fold ? 1 : 0]!;
    placement = 'ambiguous';
  } else {
    ms = candidates[0]!;
    placement = 'unique';
  }
  return { ms, iso: isoMicro(ms, d.microsecond), placement };
}

/** The checkpoint's instant: aware datetimes by their own zone, naive ones in `zone`. */
export function checkpointInstant(d: PyDatetime, zone: string): Instant {
  if (d.tz?.kind === 'zone') return { ...wallTimeToInstant(d, checkTimeZone(d.tz.zone, 'the checkpoint\'s zone')), placement: 'aware' };
  if (d.tz?.kind === 'offset') {
    const wall = Date.UTC(d.year, d.month - 1, d.day, d.hour, d.minute, d.second, Math.floor(d.microsecond / 1000));
    const ms = wall - Math.round(d.tz.offsetSeconds * 1000);
    return { ms, iso: isoMicro(ms, d.microsecond), placement: 'aware' };
  }
  return wallTimeToInstant(d, zone);
}

function isoMicro(ms: number, microsecond: number): string {
  return new Date(ms).toISOString().replace(/Z$/, `${pad(microsecond % 1000, 3)}Z`);
}
