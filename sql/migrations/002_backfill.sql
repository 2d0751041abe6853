-- Migration 002: progress of "dcache-probe backfill" (and "import-checkpoint").
--
-- A backfill copies historic billing rows (written before the triggers were installed) into
-- dcache_probe.capture_queue in chunks ordered by (datestamp, ctid). Each chunk is copied and
-- its progress recorded here in one transaction, so an interrupted backfill continues exactly
-- after the last row it copied when it is run again with the same range.
CREATE TABLE dcache_probe.backfill_progress (
    source         text        NOT NULL,                -- 'billinginfo' | 'storageinfo'
    range_since    timestamptz NOT NULL,                -- the range asked for: [since, until)
    range_until    timestamptz NOT NULL,
    -- The last row looked at: its datestamp in the column's own type, as ISO text (legacy
    -- columns have no zone, and must be compared as they are), and its ctid as the tiebreak.
    last_datestamp text,
    last_ctid      tid,
    rows_scanned   bigint      NOT NULL DEFAULT 0,      -- rows looked at (copied or skipped)
    rows_copied    bigint      NOT NULL DEFAULT 0,      -- rows put into the delivery queue
    started_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now(),
    finished_at    timestamptz,                         -- set when the whole range was copied
    PRIMARY KEY (range_since, range_until, source)
);
COMMENT ON TABLE dcache_probe.backfill_progress IS 'dcache-transfer-probe: how far each "dcache-probe backfill" range has been copied into the capture queue';
