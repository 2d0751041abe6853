-- Migration 003: the delivery ledger, for "dcache-probe verify".
--
-- Per hour of the records' end time (the billing datestamp, UTC) and source: how many records
-- the collector acknowledged, and how many rows were deliberately not sent (pool-to-pool
-- copies are not captured at all; these are the switches: DCap with OnlySendInterSiteTransfers,
-- the Suppress* switches, tape when tape reporting is off). Written in the same transaction that
-- deletes the delivered rows from the queue, so it never disagrees with what was sent.
CREATE TABLE dcache_probe.delivered_hour (
    hour      timestamptz NOT NULL,
    source    text        NOT NULL,
    delivered bigint      NOT NULL DEFAULT 0,
    skipped   bigint      NOT NULL DEFAULT 0,
    PRIMARY KEY (hour, source)
);
COMMENT ON TABLE dcache_probe.delivered_hour IS 'dcache-transfer-probe: records delivered (and deliberately skipped) per hour, compared with the billing tables by "dcache-probe verify"';
