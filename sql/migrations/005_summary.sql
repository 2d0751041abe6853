-- Migration 005: Summarize mode (Gratia's Summarize="1"): one record per hour and group
-- instead of one per transfer.
--
-- Rows are added to their hour's open part (parts_closed + 1) inside the delivery transaction,
-- which holds the hour's state row FOR SHARE. The summary sender first closes a part in a
-- committed transaction (FOR UPDATE waits for those adders), then sends it, then records it as
-- sent. A closed part never changes again, so a re-send after a crash is byte-identical; rows
-- that arrive for an hour after its part was closed go into the next part (another record
-- with its own deterministic id), so nothing is counted twice or lost.
CREATE TABLE dcache_probe.summary_state (
    hour         timestamptz PRIMARY KEY,
    parts_closed integer     NOT NULL DEFAULT 0,
    parts_sent   integer     NOT NULL DEFAULT 0
);

CREATE TABLE dcache_probe.summary_group (
    hour        timestamptz NOT NULL,
    part        integer     NOT NULL,
    group_key   uuid        NOT NULL,   -- md5 of the dimensions
    dimensions  jsonb       NOT NULL,   -- what the group's records have in common
    njobs       bigint      NOT NULL,
    bytes       numeric     NOT NULL,
    duration_ms numeric     NOT NULL,
    PRIMARY KEY (hour, part, group_key)
);
