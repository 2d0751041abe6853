-- Migration 011: removals per UTC day and storage class, with the bytes of the removed files
-- whose write the billing history holds (issue 14, docs/OUTLOOK.md "Growth").
--
-- dCache records a deletion as a doorinfo row with action 'remove' and no size. The daily
-- removal step (src/features/statistics/removals.ts) counts each complete UTC day once: its
-- remove rows, each joined to the latest successful write mover (billinginfo, isnew, not p2p,
-- errorcode 0) of the same pnfsid at or before the removal, for its size and storage class.
-- The capacity outlook's growth is the bytes written minus these bytes.
--
--   removals  doorinfo rows of the day with action 'remove' (of that storage class)
--   sized     of those, the ones whose write mover was found with a size
--   bytes     the sum of those sizes (fullsize, else transfersize)
-- storage_class is the write mover's storageclass, '(unknown)' when no write mover was found.
CREATE TABLE dcache_probe.stats_removal_day (
    day           date        NOT NULL,
    storage_class text        NOT NULL,
    removals      bigint      NOT NULL DEFAULT 0,
    sized         bigint      NOT NULL DEFAULT 0,
    bytes         numeric     NOT NULL DEFAULT 0,
    PRIMARY KEY (day, storage_class)
);
COMMENT ON TABLE dcache_probe.stats_removal_day IS 'dcache-transfer-probe: removals (doorinfo action remove) per UTC day and storage class, with the bytes found from their write movers';

-- The days the removal step has counted: a day marked here is never counted again (the mark
-- is the claim, taken in the transaction that counts the day), so the step can be interrupted,
-- rerun, and run by two probes at once. A counted day without removals has a mark and no row.
CREATE TABLE dcache_probe.stats_removal_counted (
    day        date        PRIMARY KEY,
    removals   bigint      NOT NULL,
    counted_at timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE dcache_probe.stats_removal_counted IS 'dcache-transfer-probe: UTC days whose removals are counted in stats_removal_day';
