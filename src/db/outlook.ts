/**
 * The SQL of the capacity outlook (issue 14, docs/OUTLOOK.md): the daily series it forecasts,
 * read from the per-day statistics (stats_day, sql/migrations/010_stats_day.sql), and the keys
 * (VOs, storage classes) that have history there. Reads touch only stats_day, never dCache's
 * billing tables. What the series mean, and the forecast made from them, is
 * src/features/outlook/.
 */
import type pg from 'pg';

/** Whose traffic: the whole site, one VO, one storage class. */
export type OutlookScope = 'site' | 'vo' | 'storage_class';

/** Which bytes of stats_day: those of write movers, or of read movers (tape flush and stage are neither). */
export type DayDirection = 'write' | 'read';

/** The stats_day row (dimension, key) that holds a scope's bytes of one direction. */
export function dayRowOf(scope: OutlookScope, key: string, direction: DayDirection): { dimension: string; key: string } {
  if (scope === 'site') return { dimension: 'direction', key: direction };
  if (scope === 'vo') return { dimension: 'vo_direction', key: `${key} ${direction}` };
  return { dimension: 'storage_class_direction', key: `${key} ${direction}` };
}

export interface DayValue {
  /** YYYY-MM-DD (UTC) */
  day: string;
  value: number;
}

/** The stats_day row (dimension, key) that says a scope had traffic on a day (any direction). */
function scopeRowOf(scope: OutlookScope, key: string): { dimension: string; key: string } {
  return scope === 'site' ? { dimension: 'all', key: '' } : { dimension: scope, key };
}

/**
 * The bytes of one scope and direction per UTC day over [since, until) (YYYY-MM-DD), one entry
 * per day, oldest first. The covered range starts at the first day the statistics hold for the
 * scope (the site: dimension "all", the history's or the probe's first day; a VO or storage
 * class: its first day with any transfer), so a day within it without a row is a real zero
 * (nothing of this direction moved) and a day before it is left out. Empty when the statistics
 * hold no day of the scope before `until`.
 */
export async function dailySeries(pool: pg.Pool, scope: OutlookScope, key: string, direction: DayDirection, sinceDay: string, untilDay: string): Promise<DayValue[]> {
  const row = dayRowOf(scope, key, direction);
  const seen = scopeRowOf(scope, key);
  const { rows } = await pool.query<{ day: string; value: string }>(
    `WITH cover AS (SELECT CASE WHEN min(day) IS NOT NULL THEN greatest($3::date, min(day)) END AS first FROM dcache_probe.stats_day WHERE dimension = $5 AND key = $6 AND day < $4::date)
     SELECT to_char(g.day, 'YYYY-MM-DD') AS day, coalesce(s.bytes, 0)::numeric AS value
       FROM cover CROSS JOIN LATERAL generate_series(cover.first, $4::date - 1, interval '1 day') AS g(day)
       LEFT JOIN dcache_probe.stats_day s ON s.day = g.day::date AND s.dimension = $1 AND s.key = $2
      WHERE cover.first IS NOT NULL
      ORDER BY g.day`,
    [row.dimension, row.key, sinceDay, untilDay, seen.dimension, seen.key],
  );
  return rows.map((r) => ({ day: r.day, value: Number(r.value) }));
}

/** The VOs and storage classes that have a day in the statistics, sorted. */
export async function outlookKeys(pool: pg.Pool): Promise<{ vo: string[]; storage_class: string[] }> {
  const { rows } = await pool.query<{ dimension: 'vo' | 'storage_class'; key: string }>(
    `SELECT dimension, key FROM dcache_probe.stats_day WHERE dimension IN ('vo', 'storage_class') GROUP BY dimension, key ORDER BY dimension, key COLLATE "C"`,
  );
  const out = { vo: [] as string[], storage_class: [] as string[] };
  for (const r of rows) out[r.dimension].push(r.key);
  return out;
}
