/**
 * The time formats of a Gratia record: RFC 3339 timestamps and ISO 8601 durations. One home
 * for them, so that the XML and the hourly summaries write times the same way (records must
 * stay byte-identical), and the XML does not reach into the mapping for them (the mapping keeps
 * times as epoch ms).
 * Pure functions; a time no record can carry is an EncodeError (the row is quarantined).
 */
import { EncodeError } from './types';

/** RFC 3339 UTC with milliseconds, as GRACC's Go parser wants it. */
export function rfc3339(ms: number): string {
  const d = new Date(ms);
  const year = d.getUTCFullYear();
  if (!Number.isFinite(ms) || year < 1 || year > 9999) throw new EncodeError(`time out of range: ${ms}`);
  return d.toISOString();
}

/** createTime as the old library wrote it: RFC 3339 UTC, whole seconds. */
export function rfc3339Seconds(ms: number): string {
  return rfc3339(Math.floor(ms / 1000) * 1000).replace('.000Z', 'Z');
}

/** ISO 8601 duration from milliseconds, exact: 8534 -> "PT8.534S", 0 -> "PT0S". */
export function isoDuration(ms: number): string {
  const whole = Math.max(0, Math.round(ms));
  const seconds = Math.floor(whole / 1000);
  const fraction = String(whole % 1000).padStart(3, '0').replace(/0+$/, '');
  return `PT${seconds}${fraction ? '.' + fraction : ''}S`;
}
