/**
 * The capacity outlook's answers (issue 14, docs/OUTLOOK.md): for the site, a VO or a storage
 * class, the daily bytes written or read so far (stats_day, src/db/outlook.ts), the forecast of
 * the next 365 days (forecast.ts), its calendar months, its totals 3, 6 and 12 months ahead, and
 * the day the forecast fills the free space an operator configured (statistics.capacity).
 *
 * Growth is the bytes written minus the bytes removed, per day: dCache's removal rows carry no
 * size, so the daily removal step (src/features/statistics/removals.ts) sizes each removal by
 * its file's write mover where the billing history holds it, and the answer says how many
 * removals were sized (`removals.coverage`): growth is too high by the bytes of the removals
 * that were not (docs/OUTLOOK.md, "Growth"). Growth is measured for the site and a storage
 * class once removal days are counted; a removal's VO is not known, so a VO's growth, and any
 * growth before removal days exist, is its bytes written (an upper bound), and says so. Every
 * answer says what its series is (`basis`, `growthMeasured`, `capacity.basis`).
 *
 * A forecast costs 50–150 ms of the event loop and the days it is made from change once a day, so each
 * (scope, key, direction) is computed once per CACHE_MS and shared by concurrent requests.
 * The database reads and the forecast are the only side effects; the rest is pure.
 */
import type pg from 'pg';
import { dailySeries, outlookKeys, type DayDirection, type DayValue, type OutlookScope } from '../../db/outlook';
import { removalTotals, removedBytesPerDay } from '../../db/removals';
import { forecastDaily, monthlyTotals, totalOf, type DailyForecast } from './forecast';
import { DAY_MS, utcDay } from '../../lib';

export type { OutlookScope } from '../../db/outlook';
export const OUTLOOK_SCOPES: readonly OutlookScope[] = ['site', 'vo', 'storage_class'];
export type OutlookMetric = 'written' | 'read' | 'growth';
export const OUTLOOK_METRICS: readonly OutlookMetric[] = ['written', 'read', 'growth'];

/** Days forecast. */
export const HORIZON_DAYS = 365;
/** The totals reported ahead: 3, 6 and 12 months, in days. */
export const HORIZONS = { months3: 91, months6: 182, months12: 365 } as const;
/**
 * Days of history read at most: three years, three yearly cycles for the yearly season. The
 * forecast runs on the probe's event loop and its cost grows with the history (measured: 65 ms
 * at 400 days, 150 ms at three years, 250 ms at four, fit and calibration refits included).
 */
export const MAX_HISTORY_DAYS = 1095;
/** How long a computed forecast is reused (ms). */
export const CACHE_MS = 5 * 60_000;
/** The longest key taken (storage classes and VOs are far shorter). */
const MAX_KEY_LENGTH = 256;


/** What each metric's series is, as the answer says it (growth: when it is not measured). */
export const BASIS: Record<OutlookMetric, string> = {
  written: 'bytes written per UTC day (write movers, stats_day direction write)',
  read: 'bytes read per UTC day (read movers, stats_day direction read)',
  growth: 'bytes written per UTC day: removals are not measured (docs/OUTLOOK.md, "Growth"), so growth is taken as the bytes written, an upper bound of it',
};
/** A VO's growth: removals have no VO. */
export const VO_GROWTH_BASIS =
  "bytes written per UTC day: a removal's VO is not known (docs/OUTLOOK.md, \"Growth\"), so a VO's growth is taken as its bytes written, an upper bound of it";

/** The site's removals over the history: counted days, removals, those sized, and their share. */
export interface Removals {
  countedDays: number;
  removals: number;
  sized: number;
  /** sized / removals; null without removals. */
  coverage: number | null;
}

/** The coverage of removals as a percentage in words ("87 %", "n/a"). */
export function coverageText(r: Removals): string {
  return r.coverage === null ? 'no removals recorded' : `${Math.floor(r.coverage * 1000) / 10} %`;
}

/** The basis of measured growth, with its coverage. */
export function measuredGrowthBasis(r: Removals): string {
  return `bytes written minus the bytes of removed files whose write is in the billing history (coverage ${coverageText(r)}; docs/OUTLOOK.md, "Growth")`;
}

/** Whether growth is measured for a scope: removal days are counted, and the scope is not a VO. */
export function growthMeasuredFor(scope: OutlookScope, r: Removals): boolean {
  return scope !== 'vo' && r.countedDays > 0;
}

/**
 * Growth per day: the bytes written minus those removed, on the days whose removals are
 * counted; null (missing) on a day that is not (pure).
 */
export function growthOf(written: readonly DayValue[], removed: ReadonlyMap<string, number>): HistoryDay[] {
  return written.map((w) => {
    const r = removed.get(w.day);
    return { day: w.day, value: r === undefined ? null : w.value - r };
  });
}

/** A bad parameter of the outlook's API (answered 400 with its message). */
export class OutlookRequestError extends Error {}

export interface OutlookRequest {
  scope: OutlookScope;
  /** null for the site */
  key: string | null;
  metric: OutlookMetric;
}

export interface Capacity {
  /** Free space left at the site now (bytes); 0: none configured. */
  siteBytes: number;
  /** Free space left per storage class now (bytes). */
  storageClasses: Record<string, number>;
}

/** A day of an answer's history: null when unknown (growth on a day whose removals are not counted). */
export interface HistoryDay {
  day: string;
  value: number | null;
}

export interface Interval80 {
  point: number;
  lower80: number;
  upper80: number;
}

export interface OutlookAnswer {
  scope: OutlookScope;
  key: string | null;
  metric: OutlookMetric;
  unit: 'bytes/day';
  /** What the series is (metric=growth: measured, or the bytes written, see BASIS). */
  basis: string;
  /** Growth is measured for this scope (removal days counted; never for a VO). */
  growthMeasured: boolean;
  /** The site's removals over the history (what growth's coverage is). */
  removals: Removals;
  method: string;
  historyDays: number;
  history: HistoryDay[];
  forecast: { day: string; point: number; lower80: number; upper80: number; lower95: number; upper95: number }[];
  monthly: (Interval80 & { month: string; lower95: number; upper95: number; days: number; partial: boolean })[];
  /** Totals over the next 91, 182 and 365 days; null without history. */
  horizons: { months3: Interval80 | null; months6: Interval80 | null; months12: Interval80 | null };
  capacity: null | {
    bytes: number;
    /** The series whose cumulative forecast is compared with the free space: growth when measured, else written. */
    basis: 'growth' | 'written';
    reachedOn: { point: string | null; earliest: string | null; latest: string | null };
  };
}

/** The day `n` days after a YYYY-MM-DD day. */
export function addDays(day: string, n: number): string {
  return utcDay(Date.parse(`${day}T00:00:00Z`) + n * DAY_MS);
}

/** The request's parameters, checked (the key's existence is checked against the statistics later). */
export function parseOutlookRequest(params: URLSearchParams): OutlookRequest {
  const scope = params.get('scope') ?? 'site';
  if (!OUTLOOK_SCOPES.includes(scope as OutlookScope)) throw new OutlookRequestError(`scope must be one of ${OUTLOOK_SCOPES.join(', ')}`);
  const metric = params.get('metric');
  if (metric === null || !OUTLOOK_METRICS.includes(metric as OutlookMetric)) throw new OutlookRequestError(`metric must be one of ${OUTLOOK_METRICS.join(', ')}`);
  const key = params.get('key');
  if (scope === 'site') {
    if (key !== null) throw new OutlookRequestError('scope=site takes no key');
    return { scope, key: null, metric: metric as OutlookMetric };
  }
  if (key === null || key === '') throw new OutlookRequestError(`scope=${scope} needs a key (GET /api/outlook/keys lists them)`);
  if (key.length > MAX_KEY_LENGTH) throw new OutlookRequestError(`key is longer than ${MAX_KEY_LENGTH} characters`);
  return { scope: scope as OutlookScope, key, metric: metric as OutlookMetric };
}

/** Whose free space a request is compared with, or undefined when none is configured. */
export function capacityOf(capacity: Capacity, scope: OutlookScope, key: string | null): number | undefined {
  if (scope === 'site') return capacity.siteBytes > 0 ? capacity.siteBytes : undefined;
  if (scope === 'storage_class' && key !== null && Object.hasOwn(capacity.storageClasses, key)) return capacity.storageClasses[key];
  return undefined;
}

/**
 * The first forecast days (indices) on which the cumulative forecast from its first day exceeds
 * `bytes`: by the point forecast, by the upper 80 % bound of the cumulative total (the earliest
 * it is likely to) and by its lower bound (the latest); -1 for "not within the forecast".
 */
export function daysToFill(f: DailyForecast, bytes: number): { point: number; earliest: number; latest: number } {
  const out = { point: -1, earliest: -1, latest: -1 };
  for (let i = 0; i < f.point.length && out.latest < 0; i++) {
    const total = totalOf(f, 0, i + 1);
    if (out.point < 0 && total.point > bytes) out.point = i;
    if (out.earliest < 0 && total.upper80 > bytes) out.earliest = i;
    if (out.latest < 0 && total.lower80 > bytes) out.latest = i;
  }
  return out;
}

interface Computed {
  today: string;
  history: HistoryDay[];
  forecast: DailyForecast | null;
}

/** The series of an answer: bytes of one direction, or growth (measured). */
type Series = DayDirection | 'growth';

const round = (x: number) => Math.round(x);
const interval80 = (t: { point: number; lower80: number; upper80: number }): Interval80 => ({ point: round(t.point), lower80: round(t.lower80), upper80: round(t.upper80) });

/** The answer from a computed history and forecast (pure). */
export function answerOf(
  request: OutlookRequest,
  computed: Computed,
  capacity: { bytes: number; basis: 'growth' | 'written'; fill: Computed } | undefined,
  removals: Removals = { countedDays: 0, removals: 0, sized: 0, coverage: null },
): OutlookAnswer {
  const measured = growthMeasuredFor(request.scope, removals);
  const f = computed.forecast;
  const at = (i: number) => addDays(computed.today, i);
  const horizon = (days: number) => (f ? interval80(totalOf(f, 0, days)) : null);
  let cap: OutlookAnswer['capacity'] = null;
  if (capacity) {
    const fill = capacity.fill.forecast ? daysToFill(capacity.fill.forecast, capacity.bytes) : { point: -1, earliest: -1, latest: -1 };
    const date = (i: number) => (i < 0 ? null : at(i));
    cap = { bytes: capacity.bytes, basis: capacity.basis, reachedOn: { point: date(fill.point), earliest: date(fill.earliest), latest: date(fill.latest) } };
  }
  return {
    scope: request.scope,
    key: request.key,
    metric: request.metric,
    unit: 'bytes/day',
    basis: request.metric !== 'growth' ? BASIS[request.metric] : measured ? measuredGrowthBasis(removals) : request.scope === 'vo' ? VO_GROWTH_BASIS : BASIS.growth,
    growthMeasured: measured,
    removals,
    method: f ? f.method : 'none (no history)',
    historyDays: computed.history.length,
    history: computed.history,
    forecast: f
      ? f.point.map((p, i) => ({ day: at(i), point: round(p), lower80: round(f.lower80[i]!), upper80: round(f.upper80[i]!), lower95: round(f.lower95[i]!), upper95: round(f.upper95[i]!) }))
      : [],
    monthly: f
      ? monthlyTotals(f, computed.today).map((m) => ({ month: m.month, ...interval80(m), lower95: round(m.lower95), upper95: round(m.upper95), days: m.days, partial: m.partial }))
      : [],
    horizons: { months3: horizon(HORIZONS.months3), months6: horizon(HORIZONS.months6), months12: horizon(HORIZONS.months12) },
    capacity: cap,
  };
}

/** The CSV header of an outlook. */
export const CSV_HEADER = 'day,kind,value,point,lower80,upper80,lower95,upper95';

/** An outlook as CSV: the history's days (value), then the forecast's (point and bounds). */
export function outlookCsv(a: OutlookAnswer): string {
  const lines = [CSV_HEADER];
  for (const h of a.history) lines.push(`${h.day},history,${h.value ?? ''},,,,,`);
  for (const f of a.forecast) lines.push(`${f.day},forecast,,${f.point},${f.lower80},${f.upper80},${f.lower95},${f.upper95}`);
  return lines.join('\n') + '\n';
}

/** A file name for the CSV of a request (the key reduced to safe characters). */
export function csvFilename(r: OutlookRequest, today: string): string {
  const key = r.key === null ? '' : `-${r.key.replace(/[^A-Za-z0-9._-]+/g, '_')}`;
  return `outlook-${r.scope}${key}-${r.metric}-${today}.csv`;
}

/** The outlook of one probe: its database, its capacity settings, its clock, its cache. */
export class Outlook {
  private readonly forecasts = new Map<string, { at: number; value: Promise<Computed> }>();
  private keysCache: { at: number; value: Promise<{ vo: string[]; storage_class: string[] }> } | undefined;
  private removalsCache: { at: number; value: Promise<Removals> } | undefined;

  constructor(
    private readonly pool: pg.Pool,
    private readonly capacity: Capacity,
    private readonly now: () => number = Date.now,
    private readonly cacheMs = CACHE_MS,
  ) {}

  /** The VOs and storage classes with history (GET /api/outlook/keys). */
  keys(): Promise<{ vo: string[]; storage_class: string[] }> {
    const now = this.now();
    if (!this.keysCache || now - this.keysCache.at > this.cacheMs) {
      const value = outlookKeys(this.pool);
      this.keysCache = { at: now, value };
      value.catch(() => {
        if (this.keysCache?.value === value) this.keysCache = undefined;
      });
    }
    return this.keysCache.value;
  }

  /** The site's removals over the history's range (cached as the keys). */
  removals(): Promise<Removals> {
    const now = this.now();
    if (!this.removalsCache || now - this.removalsCache.at > this.cacheMs || utcDay(this.removalsCache.at) !== utcDay(now)) {
      const today = utcDay(now);
      const value = removalTotals(this.pool, addDays(today, -MAX_HISTORY_DAYS), today).then(
        (t): Removals => ({ countedDays: t.days, removals: t.removals, sized: t.sized, coverage: t.removals > 0 ? t.sized / t.removals : null }),
        // A runtime role not granted the removal tables yet (migrate --grant-to not rerun after
        // the upgrade): growth is not measured, and the rest of the outlook still answers.
        (err: unknown): Removals => {
          if ((err as { code?: string }).code === '42501') return { countedDays: 0, removals: 0, sized: 0, coverage: null };
          throw err;
        },
      );
      this.removalsCache = { at: now, value };
      value.catch(() => {
        if (this.removalsCache?.value === value) this.removalsCache = undefined;
      });
    }
    return this.removalsCache.value;
  }

  /** The outlook of a request (GET /api/outlook); an unknown key is an OutlookRequestError. */
  async answer(request: OutlookRequest): Promise<OutlookAnswer> {
    if (request.scope !== 'site') {
      const keys = (await this.keys())[request.scope];
      if (!keys.includes(request.key!)) throw new OutlookRequestError(`no history for ${request.scope} "${request.key}" (GET /api/outlook/keys lists them)`);
    }
    const removals = await this.removals();
    const measured = growthMeasuredFor(request.scope, removals);
    const growth: Series = measured ? 'growth' : 'write';
    const series: Series = request.metric === 'read' ? 'read' : request.metric === 'growth' ? growth : 'write';
    const key = request.key ?? '';
    const computed = await this.computed(request.scope, key, series);
    const bytes = capacityOf(this.capacity, request.scope, request.key);
    // The free space is filled by growth; where growth is not measured, by the bytes written.
    const capacity = bytes === undefined ? undefined : { bytes, basis: measured ? ('growth' as const) : ('written' as const), fill: series === growth ? computed : await this.computed(request.scope, key, growth) };
    return answerOf(request, computed, capacity, removals);
  }

  /** The CSV of a request (GET /api/outlook.csv). */
  async csv(request: OutlookRequest): Promise<{ filename: string; body: string }> {
    const a = await this.answer(request);
    return { filename: csvFilename(request, utcDay(this.now())), body: outlookCsv(a) };
  }

  /** The history and forecast of one series, from the cache while fresh and of today. */
  private computed(scope: OutlookScope, key: string, series: Series): Promise<Computed> {
    const now = this.now();
    const today = utcDay(now);
    const id = `${scope}\u0000${key}\u0000${series}`;
    const hit = this.forecasts.get(id);
    if (hit && now - hit.at <= this.cacheMs && utcDay(hit.at) === today) return hit.value;
    for (const [k, v] of this.forecasts) if (now - v.at > this.cacheMs) this.forecasts.delete(k);
    const value = (async (): Promise<Computed> => {
      const since = addDays(today, -MAX_HISTORY_DAYS);
      const written = await dailySeries(this.pool, scope, key, series === 'growth' ? 'write' : series, since, today);
      const history: HistoryDay[] = series === 'growth' ? growthOf(written, await removedBytesPerDay(this.pool, scope === 'site' ? null : key, since, today)) : written;
      const known = history.some((h) => h.value !== null);
      const forecast = known ? await forecastDaily(history.map((h) => h.value), HORIZON_DAYS, { signed: series === 'growth' }) : null;
      return { today, history, forecast };
    })();
    this.forecasts.set(id, { at: now, value });
    value.catch(() => {
      if (this.forecasts.get(id)?.value === value) this.forecasts.delete(id);
    });
    return value;
  }
}
