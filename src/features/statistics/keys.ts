/**
 * What the statistics count, as pure functions: the dimensions and keys of a delivered record
 * (direction, protocol, VO, user, pool, door, client network, error code, histogram bins; for
 * the per-day totals also the storage class and the VO and storage class per direction), and
 * a batch folded into the rows of one multi-row upsert, sorted by key so that concurrent
 * probes lock rows in the same order.
 */
import type { DeliveredRecord } from '../../pipeline/delivery';
import type { BatchRows, Counts, SeenRow, StatRow } from '../../db/statistics';
import { MINUTE_MS, HOUR_MS, DAY_MS } from '../../lib';
import { meaningful, text } from '../../record/mapping';

/** dCache's CacheException.PERMISSION_DENIED. */
export const PERMISSION_DENIED = 10018;


/** Dimensions shown on the page (the pairs and histogram bins are internal). */
export const DIMENSIONS = ['direction', 'protocol', 'vo', 'user', 'pool', 'door', 'client_net', 'error'] as const;

export function zeroCounts(): Counts {
  return { transfers: 0, bytes: 0, errors: 0, denied: 0, durationMs: 0 };
}

export function addCounts(into: Counts, c: Counts): Counts {
  into.transfers += c.transfers;
  into.bytes += c.bytes;
  into.errors += c.errors;
  into.denied += c.denied;
  into.durationMs += c.durationMs;
  return into;
}

/** An IPv6 address (any form, also dCache's long Java form) as 8 numbers, or null. */
export function ipv6Groups(address: string): number[] | null {
  let a = address.trim().replace(/^\[|\]$/g, '').replace(/%.*$/, '');
  if (!a.includes(':')) return null;
  // An embedded IPv4 tail (::ffff:192.0.2.1) becomes two groups.
  const v4 = a.match(/(\d+)\.(\d+)\.(\d+)\.(\d+)$/);
  if (v4) {
    const b = v4.slice(1).map(Number);
    if (b.some((x) => x > 255)) return null;
    a = a.slice(0, v4.index) + ((b[0]! << 8) | b[1]!).toString(16) + ':' + ((b[2]! << 8) | b[3]!).toString(16);
  }
  const halves = a.split('::');
  if (halves.length > 2) return null;
  const parse = (s: string) => (s === '' ? [] : s.split(':'));
  const head = parse(halves[0]!);
  const tail = halves.length === 2 ? parse(halves[1]!) : [];
  const missing = 8 - head.length - tail.length;
  if (halves.length === 1 ? missing !== 0 : missing < 1) return null;
  const groups = [...head, ...Array<string>(halves.length === 2 ? missing : 0).fill('0'), ...tail];
  if (groups.some((g) => !/^[0-9a-fA-F]{1,4}$/.test(g))) return null;
  return groups.map((g) => parseInt(g, 16));
}

/** RFC 5952 text of 8 groups (the longest run of two or more zero groups becomes "::"). */
export function formatIpv6(groups: readonly number[]): string {
  let best = -1;
  let bestLength = 1;
  for (let i = 0; i < 8; ) {
    if (groups[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > bestLength) {
      best = i;
      bestLength = j - i;
    }
    i = j;
  }
  const hex = groups.map((g) => g.toString(16));
  if (best < 0) return hex.join(':');
  return hex.slice(0, best).join(':') + '::' + hex.slice(best + bestLength).join(':');
}

/**
 * The client's network: "192.0.2.0/24" for IPv4, "2001:db8::/64" for IPv6 (dCache writes
 * 2001:db8:0:0:0:0:0:1), the lower-cased host name for a name, "(unknown)" when none.
 */
export function clientNetwork(client: string | undefined): string {
  const c = meaningful(client);
  if (c === undefined) return '(unknown)';
  const v4 = c.match(/^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/);
  if (v4 && v4.slice(1).every((x) => Number(x) <= 255)) return `${Number(v4[1])}.${Number(v4[2])}.${Number(v4[3])}.0/24`;
  const v6 = ipv6Groups(c);
  if (v6) {
    // IPv4-mapped (::ffff:a.b.c.d): the IPv4 network.
    if (v6.slice(0, 5).every((g) => g === 0) && v6[5] === 0xffff) return `${v6[6]! >> 8}.${v6[6]! & 255}.${v6[7]! >> 8}.0/24`;
    return `${formatIpv6([...v6.slice(0, 4), 0, 0, 0, 0])}/64`;
  }
  return c.toLowerCase();
}

/** The door cell of a mover: its door row's cellname, else the one in its initiator. */
export function doorOf(d: DeliveredRecord): string {
  if (d.row.source === 'storageinfo') return '(hsm)';
  const cell = meaningful(text(d.row.door?.cellname));
  if (cell) return cell;
  const initiator = meaningful(text(d.row.record.initiator));
  const m = initiator?.match(/^door:([^:]+)/);
  return m?.[1] ?? '(none)';
}

function resource(d: DeliveredRecord, name: string): string | undefined {
  return d.record.resources.find((r) => r.description === name)?.value;
}

export function directionOf(d: DeliveredRecord): string {
  const tape = resource(d, 'TransferType');
  if (tape === 'HSM flush') return 'tape-flush';
  if (tape === 'HSM stage') return 'tape-stage';
  return resource(d, 'IsNew') === '1' ? 'write' : 'read';
}

export function userOf(d: DeliveredRecord): string {
  return d.record.dn ?? d.record.localUserId ?? '(unknown)';
}

/** log2 bin of a duration in ms: bin b holds [2^b, 2^(b+1)) ms; 0 also holds 0 ms. */
export function durationBin(ms: number): number {
  return ms < 2 ? 0 : Math.min(31, Math.floor(Math.log2(ms)));
}

/** log2 bin of a rate in bytes/s: bin b holds [2^b, 2^(b+1)) B/s. */
export function rateBin(bytesPerSecond: number): number {
  return bytesPerSecond < 2 ? 0 : Math.min(47, Math.floor(Math.log2(bytesPerSecond)));
}

export function pad2(n: number): string {
  return String(n).padStart(2, '0');
}

/** Every (dimension, key) a delivered record counts under. */
export function keysOf(d: DeliveredRecord): [string, string][] {
  const user = userOf(d);
  const pool = meaningful(text(d.row.record.cellname)) ?? '(unknown)';
  const door = doorOf(d);
  const keys: [string, string][] = [
    ['all', ''],
    ['direction', directionOf(d)],
    ['protocol', resource(d, 'Protocol') ?? '(unknown)'],
    ['vo', d.record.voName ?? '(none)'],
    ['user', user],
    ['pool', pool],
    ['door', door],
    ['error', String(d.record.status)],
    ['door_pool', `${door} ${pool}`],
    ['duration_bin', pad2(durationBin(d.record.durationMs))],
  ];
  if (d.row.source === 'billinginfo') {
    // The mover's client is the data connection's peer; the door's is the fallback.
    const net = clientNetwork(meaningful(text(d.row.record.client)) ?? text(d.row.door?.client));
    keys.push(['client_net', net], ['user_net', `${net} ${user}`]);
  }
  if (d.record.status === 0 && d.record.networkBytes > 0 && d.record.durationMs > 0) {
    keys.push(['rate_bin', pad2(rateBin((d.record.networkBytes * 1000) / d.record.durationMs))]);
  }
  return keys;
}

/** The storage class of the billing row ("cms:default@osm"), "(none)" when it has none. */
export function storageClassOf(d: DeliveredRecord): string {
  return meaningful(text(d.row.record.storageclass)) ?? '(none)';
}

/** The dimensions of keysOf that the per-day totals keep as they are. */
const DAY_DIMENSIONS = new Set(['all', 'direction', 'protocol', 'vo', 'pool', 'door']);

/**
 * Every (dimension, key) a record counts under in the per-day totals (stats_day, kept for
 * years): few dimensions of small cardinality, and the pairs the outlook needs. Made from the
 * record's keysOf (computed once per record), plus its storage class.
 */
export function dayKeysOf(d: DeliveredRecord, keys: readonly [string, string][] = keysOf(d)): [string, string][] {
  const of = (dimension: string) => keys.find(([k]) => k === dimension)![1];
  const direction = of('direction');
  const storageClass = storageClassOf(d);
  return [
    ...keys.filter(([dimension]) => DAY_DIMENSIONS.has(dimension)),
    ['storage_class', storageClass],
    ['vo_direction', `${of('vo')} ${direction}`],
    ['storage_class_direction', `${storageClass} ${direction}`],
  ];
}

/** Dimensions whose first and last transfer are remembered (stats_seen). */
export const SEEN_DIMENSIONS = new Set(['pool', 'door', 'user', 'client_net', 'user_net']);

export interface Retention {
  minuteMs: number;
  hourMs: number;
  /** Per-day rows (default: kept for ever). */
  dayMs?: number;
  /**
   * Records whose billing datestamp is before this (epoch ms: the capture's installation) are
   * left out of the hour and day tables: the history builder counts those from the billing
   * tables (src/features/statistics/history.ts), so that no row is counted twice. Default: none.
   */
  historyBeforeMs?: number;
}

function compareRows(a: { bucketMs?: number; dimension: string; key: string }, b: { bucketMs?: number; dimension: string; key: string }): number {
  return (a.bucketMs ?? 0) - (b.bucketMs ?? 0) || (a.dimension < b.dimension ? -1 : a.dimension > b.dimension ? 1 : 0) || (a.key < b.key ? -1 : a.key > b.key ? 1 : 0);
}


/**
 * A delivered batch as upsert rows, one per (bucket, dimension, key), sorted. Records older
 * than the retention of a table (a backfill of old rows) are left out of that table, and
 * records from before the installation out of the hour and day tables (Retention.historyBeforeMs).
 */
export function batchRows(delivered: readonly DeliveredRecord[], nowMs: number, retention: Retention): BatchRows {
  const minute = new Map<string, StatRow>();
  const hour = new Map<string, StatRow>();
  const day = new Map<string, StatRow>();
  const seen = new Map<string, SeenRow>();
  for (const d of delivered) {
    const t = d.record.endTimeMs;
    if (!Number.isFinite(t)) continue;
    const status = d.record.status;
    const counts: Counts = {
      transfers: 1,
      bytes: Math.max(0, Math.round(d.record.networkBytes)),
      errors: status !== 0 ? 1 : 0,
      denied: status === PERMISSION_DENIED ? 1 : 0,
      durationMs: Math.max(0, Math.round(d.record.durationMs)),
    };
    const keys = keysOf(d);
    const historic = d.row.datestampMs !== null && d.row.datestampMs < (retention.historyBeforeMs ?? -Infinity);
    for (const [table, step, keep, dimensions, fromHistory] of [
      [minute, MINUTE_MS, retention.minuteMs, keys, false],
      [hour, HOUR_MS, retention.hourMs, keys, true],
      [day, DAY_MS, retention.dayMs ?? Infinity, dayKeysOf(d, keys), true],
    ] as const) {
      if (t < nowMs - keep || (fromHistory && historic)) continue;
      const bucketMs = Math.floor(t / step) * step;
      for (const [dimension, key] of dimensions) {
        const id = `${bucketMs}\u0001${dimension}\u0001${key}`;
        let row = table.get(id);
        if (!row) table.set(id, (row = { bucketMs, dimension, key, ...zeroCounts() }));
        addCounts(row, counts);
      }
    }
    for (const [dimension, key] of keys) {
      if (!SEEN_DIMENSIONS.has(dimension)) continue;
      const id = `${dimension}\u0001${key}`;
      const s = seen.get(id);
      if (!s) seen.set(id, { dimension, key, firstMs: t, lastMs: t });
      else {
        s.firstMs = Math.min(s.firstMs, t);
        s.lastMs = Math.max(s.lastMs, t);
      }
    }
  }
  const sorted = (m: Map<string, StatRow>) => [...m.values()].sort(compareRows);
  return { minute: sorted(minute), hour: sorted(hour), day: sorted(day), seen: [...seen.values()].sort(compareRows) };
}
