/**
 * Record mapping: a captured billing row (and its door row) -> a Gratia usage record.
 * (Identity files come in as lookup tables, so this stays pure.)
 *
 * Pure functions only: the same input always gives the same record, because collectors
 * deduplicate by content and a re-sent record must be byte-identical to be recognised.
 * Nothing here reads the clock, the environment or the database.
 */

import { NO_IDENTITY_FILES, type IdentityTables } from './identity';
import { EncodeError, type CapturedRow } from './types';

/** The old probe's record filters (ProbeConfig switches), all off by default. */
export interface RecordFilters {
  /** OnlySendInterSiteTransfers: leave out DCap (site-local) transfers. */
  onlyInterSiteTransfers: boolean;
  suppressGridLocal: boolean;
  suppressNoDn: boolean;
  suppressUnknownVo: boolean;
  /** Keep records without a VO in the quarantine (for replay once user-vo-map knows them). */
  quarantineUnknownVo: boolean;
}

export const NO_FILTERS: RecordFilters = { onlyInterSiteTransfers: false, suppressGridLocal: false, suppressNoDn: false, suppressUnknownVo: false, quarantineUnknownVo: false };

export interface MappingOptions {
  probeName: string;
  siteName: string;
  grid: string;
  dcacheServerHost: string;
  reportTape: boolean;
  /** passwd, group and user-vo-map lookups (none: LocalUserId is the owner, VO from the FQAN). */
  identity?: IdentityTables;
  filters?: RecordFilters;
}

export interface Resource {
  description: string;
  value: string;
}

/** The fields of a Gratia JobUsageRecord of ResourceType Storage, in the meaning we give them. */
export interface UsageRecord {
  recordId: string;
  /**
   * RecordIdentity's createTime: the billing row's datestamp, not the time the probe saw the
   * row, so that every copy of a transaction (a second billing cell, a retried commit) and
   * every re-send comes out byte-identical. (Collectors leave createTime out of their
   * duplicate check, but our promise is bytes.)
   */
  createTimeMs: number;
  localJobId: string;
  dn?: string;
  localUserId?: string;
  voName?: string;
  reportableVoName?: string;
  /** Source, Destination, Protocol, IsNew (and for tape: TransferType). */
  resources: Resource[];
  startTimeMs: number;
  endTimeMs: number;
  networkBytes: number;
  /** Duration of the transfer in ms (the Network phase and the WallDuration). */
  durationMs: number;
  /** The Network element's description: the billing action ("transfer", "store", "restore"). */
  action: string;
  submitHost?: string;
  status: number;
  probeName: string;
  siteName: string;
  grid: string;
  /** Transfers this record stands for: 1, or a summary group's count. */
  njobs?: number;
}

export type MappingResult =
  | { kind: 'record'; record: UsageRecord }
  | { kind: 'skip'; reason: string }
  /** Valid, but held back by a switch (QuarantineUnknownVORecords) for replay later. */
  | { kind: 'quarantine'; reason: string };

// ---------------------------------------------------------------------------------------
// Reading jsonb values of either schema form (varchar or unbounded text, bigint or numeric)

export function text(value: unknown): string | undefined {
  if (value === null || value === undefined) return undefined;
  if (typeof value === 'string') return value;
  if (typeof value === 'number' || typeof value === 'boolean') return String(value);
  return undefined;
}

/** A number from a JSON number or a numeric string; undefined if absent or not a number. */
export function numeric(value: unknown): number | undefined {
  if (value === null || value === undefined || value === '') return undefined;
  const n = typeof value === 'number' ? value : typeof value === 'string' ? Number(value) : NaN;
  return Number.isFinite(n) ? n : undefined;
}

export function bool(value: unknown): boolean | undefined {
  if (typeof value === 'boolean') return value;
  if (value === 't' || value === 'true' || value === 1) return true;
  if (value === 'f' || value === 'false' || value === 0) return false;
  return undefined;
}

/** dCache writes "unknown", "<unknown>" or "<undefined>" where it has nothing. */
export function meaningful(value: string | null | undefined): string | undefined {
  if (value === undefined || value === null) return undefined;
  const v = value.trim();
  if (v === '' || /^<?(unknown|undefined)>?$/i.test(v)) return undefined;
  return v;
}

// ---------------------------------------------------------------------------------------
// The mapping

/** DCap transfers are site-local (Gratia "Local" grid); the old probe did the same. */
export function isDcap(protocol: string | undefined): boolean {
  return protocol !== undefined && /^dcap/i.test(protocol);
}

/** The VO of a VOMS FQAN: "/cms/Role=production/Capability=NULL" -> "cms". */
export function voFromFqan(fqan: string | null | undefined): string | undefined {
  const m = meaningful(fqan)?.match(/^\/([^/]+)/);
  return m?.[1];
}

/**
 * A pool's name for Source/Destination: "<cellname>@<dCache server host>", exactly as the old
 * probe wrote it (so "pool@domain@host" on dCache >= 3), to keep the collector's series whole.
 */
export function poolResource(cellname: string | undefined, dcacheServerHost: string): string {
  return `${meaningful(cellname) ?? 'unknown'}@${dcacheServerHost}`;
}

export function deterministicRecordId(probeName: string, source: CapturedRow['source'], transaction: string, action?: string): string {
  return source === 'billinginfo' ? `${probeName}:${transaction}` : `${probeName}:${action ?? 'tape'}:${transaction}`;
}

/**
 * The user's identity. The door row knows the user (a modern mover row too). LocalUserId is
 * the passwd name of the uid, else the group name of the gid (UnixGidListFileName), else the
 * owner; NFS transfers always use the owner (their uid is the client's, not a grid user's).
 * The VO comes from user-vo-map for that LocalUserId, else from the primary FQAN.
 */
export function identity(
  mover: Record<string, unknown>,
  door: Record<string, unknown> | null,
  tables: IdentityTables = NO_IDENTITY_FILES,
): Pick<UsageRecord, 'dn' | 'localUserId' | 'voName' | 'reportableVoName'> {
  const owner = meaningful(text(door?.owner)) ?? meaningful(text(mover.owner));
  const uid = numeric(door?.mappeduid) ?? numeric(mover.mappeduid);
  const gid = numeric(door?.mappedgid) ?? numeric(mover.mappedgid);
  const nfs = /^NFS4/i.test(text(mover.protocol) ?? '');
  const localUserId = nfs
    ? owner
    : ((uid !== undefined && uid >= 0 ? tables.userName(uid) : undefined) ?? (gid !== undefined && gid >= 0 ? tables.groupName(gid) : undefined) ?? owner);
  const mapped = localUserId !== undefined ? tables.voOf(localUserId) : undefined;
  const fqanVo = voFromFqan(meaningful(text(mover.fqan)) ?? meaningful(text(door?.fqan)));
  return {
    dn: owner !== undefined && owner.startsWith('/') ? owner : undefined,
    localUserId,
    voName: mapped?.vo ?? fqanVo,
    reportableVoName: mapped?.reportable ?? fqanVo,
  };
}

/** The old probe's switches, in its order: GridLocal, NoDN, UnknownVO, then the quarantine. */
export function applyFilters(record: UsageRecord, filters: RecordFilters = NO_FILTERS): MappingResult {
  const protocol = record.resources.find((r) => r.description === 'Protocol')?.value;
  if (filters.onlyInterSiteTransfers && isDcap(protocol)) return { kind: 'skip', reason: 'DCap transfer (OnlySendInterSiteTransfers)' };
  if (filters.suppressGridLocal && record.grid === 'Local') return { kind: 'skip', reason: 'Local grid (SuppressGridLocalRecords)' };
  if (filters.suppressNoDn && !record.dn) return { kind: 'skip', reason: 'no DN (SuppressNoDNRecords)' };
  if (!record.voName) {
    if (filters.suppressUnknownVo) return { kind: 'skip', reason: 'unknown VO (SuppressUnknownVORecords)' };
    if (filters.quarantineUnknownVo) return { kind: 'quarantine', reason: `unknown VO for user ${record.localUserId ?? '(none)'} (QuarantineUnknownVORecords)` };
  }
  return { kind: 'record', record };
}

/**
 * The user's host: the door's client, except where the door does not know it (DCap doors
 * write "unknown"; no door row found), then the mover's client; "Unknown" when neither knows.
 */
export function submitHostOf(mover: Record<string, unknown>, door: Record<string, unknown> | null): string {
  return meaningful(text(door?.client)) ?? meaningful(text(mover.client)) ?? 'Unknown';
}

export function mapTransfer(row: CapturedRow, opts: MappingOptions): MappingResult {
  const r = row.record;
  if (bool(r.p2p) === true) return { kind: 'skip', reason: 'pool-to-pool copy' };
  const transaction = meaningful(text(r.transaction));
  if (transaction === undefined) throw new EncodeError('billinginfo row has no transaction (mover id)');
  if (row.datestampMs === null) throw new EncodeError(`unreadable datestamp ${JSON.stringify(r.datestamp ?? null)}`);

  const transferSize = numeric(r.transfersize);
  const broken = transferSize === undefined || transferSize < 0;  // broken movers: 0 bytes, 0 time
  const durationMs = broken ? 0 : Math.max(0, numeric(r.connectiontime) ?? 0);
  const protocol = meaningful(text(r.protocol)) ?? '<unknown>';
  const isNew = bool(r.isnew) === true;
  const pool = poolResource(text(r.cellname), opts.dcacheServerHost);
  const client = meaningful(text(r.client)) ?? 'unknown';
  const submitHost = submitHostOf(r, row.door);

  return applyFilters({
    recordId: deterministicRecordId(opts.probeName, 'billinginfo', transaction),
    createTimeMs: row.datestampMs,
    localJobId: transaction,
    ...identity(r, row.door, opts.identity),
    resources: [
      { description: 'Source', value: isNew ? client : pool },
      { description: 'Destination', value: isNew ? pool : client },
      { description: 'Protocol', value: protocol },
      { description: 'IsNew', value: isNew ? '1' : '0' },
    ],
    startTimeMs: row.datestampMs - durationMs,
    endTimeMs: row.datestampMs,
    networkBytes: broken ? 0 : transferSize,
    durationMs,
    action: meaningful(text(r.action)) ?? 'transfer',
    submitHost,
    status: Math.trunc(numeric(r.errorcode) ?? 0),
    probeName: opts.probeName,
    siteName: opts.siteName,
    grid: isDcap(protocol) ? 'Local' : opts.grid,
  }, opts.filters);
}

/**
 * A tape flush (store) or stage (restore) from storageinfo. Its datestamp is when the request
 * was created; the transfer itself starts after queuedtime and lasts connectiontime.
 */
export function mapTape(row: CapturedRow, opts: MappingOptions): MappingResult {
  if (!opts.reportTape) return { kind: 'skip', reason: 'tape reporting is off' };
  const r = row.record;
  const action = meaningful(text(r.action));
  if (action !== 'store' && action !== 'restore') return { kind: 'skip', reason: `storageinfo action ${action ?? 'missing'}` };
  const transaction = meaningful(text(r.transaction));
  if (transaction === undefined) throw new EncodeError('storageinfo row has no transaction');
  if (row.datestampMs === null) throw new EncodeError(`unreadable datestamp ${JSON.stringify(r.datestamp ?? null)}`);

  const startTimeMs = row.datestampMs + Math.max(0, numeric(r.queuedtime) ?? 0);
  const durationMs = Math.max(0, numeric(r.connectiontime) ?? 0);
  const storageClass = meaningful(text(r.storageclass));
  const hsm = `hsm:${storageClass?.split('@')[1] ?? 'unknown'}`;
  const pool = poolResource(text(r.cellname), opts.dcacheServerHost);
  const isStore = action === 'store';
  const owner = storageClass?.split(':')[0];

  return {
    kind: 'record',
    record: {
      recordId: deterministicRecordId(opts.probeName, 'storageinfo', transaction, action),
      createTimeMs: row.datestampMs,
      localJobId: transaction,
      localUserId: meaningful(owner),
      resources: [
        { description: 'Source', value: isStore ? pool : hsm },
        { description: 'Destination', value: isStore ? hsm : pool },
        { description: 'Protocol', value: 'HSM' },
        { description: 'IsNew', value: isStore ? '0' : '1' },
        { description: 'TransferType', value: isStore ? 'HSM flush' : 'HSM stage' },
      ],
      startTimeMs,
      endTimeMs: startTimeMs + durationMs,
      networkBytes: Math.max(0, numeric(r.fullsize) ?? 0),
      durationMs,
      action,
      status: Math.trunc(numeric(r.errorcode) ?? 0),
      probeName: opts.probeName,
      siteName: opts.siteName,
      grid: opts.grid,
    },
  };
}

export function mapRow(row: CapturedRow, opts: MappingOptions): MappingResult {
  return row.source === 'storageinfo' ? mapTape(row, opts) : mapTransfer(row, opts);
}
