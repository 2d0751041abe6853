-- Migration 004: transfer statistics and anomaly alerts (the dashboard, docs/DASHBOARD.md).
--
-- Small aggregates written by the probe inside each delivery transaction (one multi-row upsert
-- per batch, keys in sorted order), so they agree exactly with what the collector acknowledged.
-- They are never computed from the billing tables. Buckets are by the record's end time (the
-- billing datestamp), UTC.
--
-- dimension / key:
--   all ''            every delivered record
--   direction         read | write (into dCache) | tape-flush | tape-stage
--   protocol, vo, user (DN, else the local user), pool (billing cellname), door (door cell),
--   client_net        the client's /24 (IPv4) or /64 (IPv6), else the host name
--   error             the errorcode ('0' for success)
--   door_pool         '<door> <pool>' (faults are attributed to a door or a pool from this)
--   user_net          '<client_net> <user>' (new client networks of a user)
--   duration_bin      log2 of the duration in ms (0..31), the transfers' count in "transfers"
--   rate_bin          log2 of bytes/s of successful transfers with bytes and duration
CREATE TABLE dcache_probe.stats_minute (
    bucket      timestamptz NOT NULL,
    dimension   text        NOT NULL,
    key         text        NOT NULL,
    transfers   bigint      NOT NULL DEFAULT 0,
    bytes       bigint      NOT NULL DEFAULT 0,
    errors      bigint      NOT NULL DEFAULT 0,      -- errorcode <> 0
    denied      bigint      NOT NULL DEFAULT 0,      -- errorcode 10018 (permission denied)
    duration_ms bigint      NOT NULL DEFAULT 0,      -- sum of the transfers' durations
    PRIMARY KEY (bucket, dimension, key)
);
COMMENT ON TABLE dcache_probe.stats_minute IS 'dcache-transfer-probe: delivered transfers per minute and dimension (kept about 2 days)';

CREATE TABLE dcache_probe.stats_hour (LIKE dcache_probe.stats_minute INCLUDING DEFAULTS INCLUDING INDEXES);
COMMENT ON TABLE dcache_probe.stats_hour IS 'dcache-transfer-probe: delivered transfers per hour and dimension (kept about 60 days)';

-- When each key was first and last seen (record end times): new client networks of a user,
-- pools that stopped serving.
CREATE TABLE dcache_probe.stats_seen (
    dimension  text        NOT NULL,
    key        text        NOT NULL,
    first_seen timestamptz NOT NULL,
    last_seen  timestamptz NOT NULL,
    PRIMARY KEY (dimension, key)
);
COMMENT ON TABLE dcache_probe.stats_seen IS 'dcache-transfer-probe: first and last transfer of each pool, door, user, client network';

-- Alerts of the anomaly detectors. One open alert per (kind, dimension, key): a second probe
-- finds it open and does not log it again.
CREATE TABLE dcache_probe.stats_alert (
    id         bigserial   PRIMARY KEY,
    kind       text        NOT NULL,                 -- fault | misuse | surge | new-network | pool-stopped
    dimension  text        NOT NULL,
    key        text        NOT NULL,
    message    text        NOT NULL,
    evidence   jsonb       NOT NULL,
    opened_at  timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    closed_at  timestamptz
);
CREATE UNIQUE INDEX stats_alert_open ON dcache_probe.stats_alert (kind, dimension, key) WHERE closed_at IS NULL;
CREATE INDEX stats_alert_opened ON dcache_probe.stats_alert (opened_at);
COMMENT ON TABLE dcache_probe.stats_alert IS 'dcache-transfer-probe: abnormal traffic found by the detectors (open while closed_at is NULL)';
