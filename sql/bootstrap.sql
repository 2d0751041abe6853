-- Run by "dcache-probe migrate" before any migration, in the same transaction: creates our
-- schema and the table that records which migrations are installed. Idempotent.
CREATE SCHEMA IF NOT EXISTS dcache_probe;
COMMENT ON SCHEMA dcache_probe IS 'dcache-transfer-probe: capture queue and delivery state (removed by "dcache-probe uninstall")';

CREATE TABLE IF NOT EXISTS dcache_probe.schema_migration (
    version        integer     PRIMARY KEY,
    name           text        NOT NULL,
    billing_schema text        NOT NULL,
    applied_at     timestamptz NOT NULL DEFAULT now()
);
