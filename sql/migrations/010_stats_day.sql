-- Migration 010: per-day totals kept for years, and the hours the history builder has counted
-- (issue 14, docs/DASHBOARD.md "History").
--
-- stats_day: one row per (UTC day of the record's end time, dimension, key). Written in the
-- same delivery transaction as stats_minute / stats_hour, and by `dcache-probe stats-history`
-- from the billing tables for the time before the capture was installed. Small by design
-- (a year of a busy site is a few tens of MB, docs/DASHBOARD.md), kept statistics.dayRetentionDays.
--
-- dimension / key:
--   all ''                       every counted record
--   direction                    read | write | tape-flush | tape-stage
--   protocol, vo, storage_class, pool, door
--   vo_direction                 '<vo> <direction>'
--   storage_class_direction      '<storage class> <direction>'
CREATE TABLE dcache_probe.stats_day (
    day         date        NOT NULL,
    dimension   text        NOT NULL,
    key         text        NOT NULL,
    transfers   bigint      NOT NULL DEFAULT 0,
    bytes       bigint      NOT NULL DEFAULT 0,
    errors      bigint      NOT NULL DEFAULT 0,      -- errorcode <> 0
    denied      bigint      NOT NULL DEFAULT 0,      -- errorcode 10018 (permission denied)
    duration_ms bigint      NOT NULL DEFAULT 0,
    PRIMARY KEY (day, dimension, key)
);
COMMENT ON TABLE dcache_probe.stats_day IS 'dcache-transfer-probe: transfers per UTC day and dimension (kept for years)';

-- Which hours of which billing table the history builder has counted (by the rows' datestamp,
-- before the capture's installation): an hour marked here is never counted again, so the
-- builder can be interrupted and rerun.
CREATE TABLE dcache_probe.stats_history (
    source   text        NOT NULL,                   -- billinginfo | storageinfo
    hour     timestamptz NOT NULL,
    rows     bigint      NOT NULL,                   -- billing rows counted (p2p and others left out)
    built_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (source, hour)
);
COMMENT ON TABLE dcache_probe.stats_history IS 'dcache-transfer-probe: hours of billing history counted into the statistics';
