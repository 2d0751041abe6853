/**
 * What the statistics count, as pure functions: the dimensions and keys of a delivered record
 * (direction, protocol, VO, user, pool, door, client network, error code, histogram bins; for
 * the per-day totals also the storage class and the VO and storage class per direction), and
 * a batch folded into the rows of one multi-row upsert (batchTallies: per minute, dimension and
 * key; the statement, src/db/statistics.ts, sums them per table and takes the row locks in
 * sorted key order) or, as a view per table, into each table's sorted rows (batchRows).
 */
import type { DeliveredRecord } from '../../pipeline/delivery';
import { TO_DAY, TO_HOUR, TO_MINUTE, type BatchRows, type BatchTallies, type Counts, type SeenRow, type StatRow, type TallyRow } from '../../db/statistics';
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

/** The text of every histogram bin (0–47), made once rather than per record. */
const BIN_TEXT = Array.from({ length: 48 }, (_, b) => pad2(b));
const binText = (b: number) => BIN_TEXT[b] ?? pad2(b);

/**
 * The dimensions a record can count under, in keysOf's order: the first KEY_SLOTS of them are
 * keysOf's (the last three of these only some records have), the rest the per-day totals' own
 * (dayKeysOf). batchRows keeps a record's keys as an array indexed by these slots.
 */
const SLOTS = [
  'all', 'direction', 'protocol', 'vo', 'user', 'pool', 'door', 'error', 'door_pool', 'duration_bin', 'client_net', 'user_net', 'rate_bin',
  'storage_class', 'vo_direction', 'storage_class_direction',
] as const;
const KEY_SLOTS = 13;
const slot = (dimension: (typeof SLOTS)[number]) => SLOTS.indexOf(dimension);
const S_CLIENT_NET = slot('client_net');
const S_USER_NET = slot('user_net');
const S_RATE_BIN = slot('rate_bin');
const S_STORAGE_CLASS = slot('storage_class');

/** The dimensions of keysOf that the per-day totals keep as they are. */
const DAY_DIMENSIONS = new Set(['all', 'direction', 'protocol', 'vo', 'pool', 'door']);
/** The slots of the per-day totals (stats_day), in dayKeysOf's order. */
const DAY_SLOTS = SLOTS.map((_, i) => i).filter((i) => i >= KEY_SLOTS || DAY_DIMENSIONS.has(SLOTS[i]!));
/** The slots of the per-minute and per-hour tables (keysOf's). */
const KEY_SLOT_LIST = SLOTS.map((_, i) => i).filter((i) => i < KEY_SLOTS);

/**
 * The one definition of a record's keys: writes into `into` (indexed by SLOTS) the key of each
 * dimension it counts under, undefined for those it has none of. The key of a pair ("door
 * pool") is `into[s] + ' ' + second[s]`; its two parts are kept apart, so that batchRows
 * tallies a pair without making its text for every record (only once per distinct pair).
 * `networks` remembers the client networks of a batch (the same clients come again and
 * again; the parse is the cost).
 */
function fillKeys(d: DeliveredRecord, into: (string | undefined)[], second: (string | undefined)[], networks?: Map<string, string>): void {
  const user = userOf(d);
  const pool = meaningful(text(d.row.record.cellname)) ?? '(unknown)';
  const door = doorOf(d);
  const direction = directionOf(d);
  const vo = d.record.voName ?? '(none)';
  into[0] = '';
  into[1] = direction;
  into[2] = resource(d, 'Protocol') ?? '(unknown)';
  into[3] = vo;
  into[4] = user;
  into[5] = pool;
  into[6] = door;
  into[7] = String(d.record.status);
  into[8] = door;
  second[8] = pool;
  into[9] = binText(durationBin(d.record.durationMs));
  if (d.row.source === 'billinginfo') {
    // The mover's client is the data connection's peer; the door's is the fallback.
    const client = meaningful(text(d.row.record.client)) ?? text(d.row.door?.client);
    let net = client === undefined ? undefined : networks?.get(client);
    if (net === undefined) {
      net = clientNetwork(client);
      if (client !== undefined) networks?.set(client, net);
    }
    into[S_CLIENT_NET] = net;
    into[S_USER_NET] = net;
    second[S_USER_NET] = user;
  } else into[S_CLIENT_NET] = into[S_USER_NET] = undefined;
  into[S_RATE_BIN] =
    d.record.status === 0 && d.record.networkBytes > 0 && d.record.durationMs > 0 ? binText(rateBin((d.record.networkBytes * 1000) / d.record.durationMs)) : undefined;
  const storageClass = storageClassOf(d);
  into[S_STORAGE_CLASS] = storageClass;
  into[S_STORAGE_CLASS + 1] = vo;
  second[S_STORAGE_CLASS + 1] = direction;
  into[S_STORAGE_CLASS + 2] = storageClass;
  second[S_STORAGE_CLASS + 2] = direction;
}

/** The key of a pair's two parts. */
const pairKey = (first: string, second: string) => `${first} ${second}`;

function pairs(d: DeliveredRecord, slots: readonly number[]): [string, string][] {
  const keys: (string | undefined)[] = [];
  const second: (string | undefined)[] = [];
  fillKeys(d, keys, second);
  const out: [string, string][] = [];
  for (const i of slots) if (keys[i] !== undefined) out.push([SLOTS[i]!, second[i] === undefined ? keys[i]! : pairKey(keys[i]!, second[i]!)]);
  return out;
}

/** Every (dimension, key) a delivered record counts under. */
export function keysOf(d: DeliveredRecord): [string, string][] {
  return pairs(d, KEY_SLOT_LIST);
}

/** The storage class of the billing row ("cms:default@osm"), "(none)" when it has none. */
export function storageClassOf(d: DeliveredRecord): string {
  return meaningful(text(d.row.record.storageclass)) ?? '(none)';
}

/**
 * Every (dimension, key) a record counts under in the per-day totals (stats_day, kept for
 * years): few dimensions of small cardinality, and the pairs the outlook needs: those of
 * keysOf in DAY_DIMENSIONS, its storage class, and its VO and storage class per direction.
 */
export function dayKeysOf(d: DeliveredRecord): [string, string][] {
  return pairs(d, DAY_SLOTS);
}

/** Dimensions whose first and last transfer are remembered (stats_seen). */
export const SEEN_DIMENSIONS = new Set(['pool', 'door', 'user', 'client_net', 'user_net']);
const SEEN_SLOTS = SLOTS.map((_, i) => i).filter((i) => SEEN_DIMENSIONS.has(SLOTS[i]!));

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

/** What a batch's records of one minute and one key add up to, and when the first and last ended. */
interface Tally extends Counts {
  firstMs: number;
  lastMs: number;
}

/**
 * The records of a batch that ended in one minute and go to the same tables (`tables`, a mask
 * of TO_MINUTE, TO_HOUR, TO_DAY; 0: none, they count only for stats_seen): per slot, a tally
 * per key (of a pair: per first part, per second part). A batch's records mostly share a few
 * such groups, so the per-record work is a Map lookup per slot by the key itself (two for a
 * pair); rows are made per group.
 */
interface Group {
  minuteMs: number;
  tables: number;
  tallies: Map<string, Tally>[];
  pairs: Map<string, Map<string, Tally>>[];
}

/** Each key of a slot of a group, with its tally. */
function eachTally(g: Group, s: number, f: (key: string, t: Tally) => void): void {
  for (const [key, t] of g.tallies[s]!) f(key, t);
  for (const [first, bySecond] of g.pairs[s]!) for (const [second, t] of bySecond) f(pairKey(first, second), t);
}

function tallyOf(m: Map<string, Tally>, key: string, t: number, bytes: number, errors: number, denied: number, durationMs: number): void {
  const tally = m.get(key);
  if (!tally) m.set(key, { transfers: 1, bytes, errors, denied, durationMs, firstMs: t, lastMs: t });
  else {
    tally.transfers++;
    tally.bytes += bytes;
    tally.errors += errors;
    tally.denied += denied;
    tally.durationMs += durationMs;
    if (t < tally.firstMs) tally.firstMs = t;
    if (t > tally.lastMs) tally.lastMs = t;
  }
}

/**
 * A delivered batch tallied per minute group. Records older than the retention of a table (a
 * backfill of old rows) are left out of that table, and records from before the installation
 * out of the hour and day tables (Retention.historyBeforeMs).
 */
function tallyBatch(delivered: readonly DeliveredRecord[], nowMs: number, retention: Retention): Group[] {
  const groups = new Map<number, Group>();
  const networks = new Map<string, string>();
  const keys: (string | undefined)[] = Array(SLOTS.length).fill(undefined);
  const second: (string | undefined)[] = Array(SLOTS.length).fill(undefined);
  const minuteFrom = nowMs - retention.minuteMs;
  const hourFrom = nowMs - retention.hourMs;
  const dayFrom = nowMs - (retention.dayMs ?? Infinity);
  const historyBefore = retention.historyBeforeMs ?? -Infinity;
  let last: Group | undefined;
  let lastId = NaN;
  for (const d of delivered) {
    const t = d.record.endTimeMs;
    if (!Number.isFinite(t)) continue;
    const historic = d.row.datestampMs !== null && d.row.datestampMs < historyBefore;
    const tables = (t >= minuteFrom ? TO_MINUTE : 0) | (t >= hourFrom && !historic ? TO_HOUR : 0) | (t >= dayFrom && !historic ? TO_DAY : 0);
    const minuteMs = Math.floor(t / MINUTE_MS) * MINUTE_MS;
    // Minutes are multiples of 60,000, so the mask (< 8) fits in the low digits.
    const id = minuteMs + tables;
    let g = id === lastId ? last! : groups.get(id);
    if (!g) groups.set(id, (g = { minuteMs, tables, tallies: SLOTS.map(() => new Map()), pairs: SLOTS.map(() => new Map()) }));
    last = g;
    lastId = id;
    fillKeys(d, keys, second, networks);
    const status = d.record.status;
    const bytes = Math.max(0, Math.round(d.record.networkBytes));
    const errors = status !== 0 ? 1 : 0;
    const denied = status === PERMISSION_DENIED ? 1 : 0;
    const durationMs = Math.max(0, Math.round(d.record.durationMs));
    for (let s = 0; s < SLOTS.length; s++) {
      const key = keys[s];
      if (key === undefined) continue;
      const then = second[s];
      if (then === undefined) tallyOf(g.tallies[s]!, key, t, bytes, errors, denied, durationMs);
      else {
        let bySecond = g.pairs[s]!.get(key);
        if (!bySecond) g.pairs[s]!.set(key, (bySecond = new Map()));
        tallyOf(bySecond, then, t, bytes, errors, denied, durationMs);
      }
    }
  }
  return [...groups.values()];
}

/** First and last seen: of every record with a time, whichever tables it goes to; one row per key, sorted. */
function seenRows(groups: readonly Group[]): SeenRow[] {
  const out: SeenRow[] = [];
  for (const s of SEEN_SLOTS) {
    const bySlot = new Map<string, SeenRow>();
    for (const g of groups) {
      eachTally(g, s, (key, t) => {
        const r = bySlot.get(key);
        if (!r) bySlot.set(key, { dimension: SLOTS[s]!, key, firstMs: t.firstMs, lastMs: t.lastMs });
        else {
          r.firstMs = Math.min(r.firstMs, t.firstMs);
          r.lastMs = Math.max(r.lastMs, t.lastMs);
        }
      });
    }
    out.push(...bySlot.values());
  }
  return out.sort(compareRows);
}

/** The tables a slot's keys go to, of those a group goes to. */
const slotTables = (s: number, tables: number) => (s < KEY_SLOTS ? tables & (TO_MINUTE | TO_HOUR) : 0) | (DAY_SLOTS.includes(s) ? tables & TO_DAY : 0);

/**
 * A delivered batch as it is written (upsertTallies): one row per minute, dimension and key
 * with the tables it is added to (the statement sums the rows of each table's bucket: a third
 * of the rows that batchRows gives), and the first and last seen keys.
 */
export function batchTallies(delivered: readonly DeliveredRecord[], nowMs: number, retention: Retention): BatchTallies {
  const groups = tallyBatch(delivered, nowMs, retention);
  const rows: TallyRow[] = [];
  for (const g of groups) {
    for (let s = 0; s < SLOTS.length; s++) {
      const tables = slotTables(s, g.tables);
      if (tables === 0) continue;
      const dimension = SLOTS[s]!;
      eachTally(g, s, (key, t) =>
        rows.push({ bucketMs: g.minuteMs, tables, dimension, key, transfers: t.transfers, bytes: t.bytes, errors: t.errors, denied: t.denied, durationMs: t.durationMs }),
      );
    }
  }
  return { rows, seen: seenRows(groups) };
}

/** Adds `from` (a key's tally) to the table's rows of a bucket and slot. */
function addTally(rows: Map<number, Map<string, StatRow>[]>, bucketMs: number, s: number, key: string, from: Tally): void {
  let bySlot = rows.get(bucketMs);
  if (!bySlot) rows.set(bucketMs, (bySlot = SLOTS.map(() => new Map<string, StatRow>())));
  const row = bySlot[s]!.get(key);
  if (row) addCounts(row, from);
  else bySlot[s]!.set(key, { bucketMs, dimension: SLOTS[s]!, key, transfers: from.transfers, bytes: from.bytes, errors: from.errors, denied: from.denied, durationMs: from.durationMs });
}

function tableRows(groups: readonly Group[], table: number, step: number): StatRow[] {
  const rows = new Map<number, Map<string, StatRow>[]>();
  for (const g of groups) {
    const bucketMs = Math.floor(g.minuteMs / step) * step;
    for (let s = 0; s < SLOTS.length; s++) if (slotTables(s, g.tables) & table) eachTally(g, s, (key, t) => addTally(rows, bucketMs, s, key, t));
  }
  const out: StatRow[] = [];
  for (const bySlot of rows.values()) for (const m of bySlot) for (const r of m.values()) out.push(r);
  return out.sort(compareRows);
}

/**
 * What a delivered batch adds to each table, one row per (bucket, dimension, key), sorted: the
 * sums the statement of upsertTallies makes of batchTallies' rows, here for the tests and
 * readers of this module. Records older than the retention of a table are left out of that
 * table, and records from before the installation out of the hour and day tables.
 */
export function batchRows(delivered: readonly DeliveredRecord[], nowMs: number, retention: Retention): BatchRows {
  const groups = tallyBatch(delivered, nowMs, retention);
  return { minute: tableRows(groups, TO_MINUTE, MINUTE_MS), hour: tableRows(groups, TO_HOUR, HOUR_MS), day: tableRows(groups, TO_DAY, DAY_MS), seen: seenRows(groups) };
}
