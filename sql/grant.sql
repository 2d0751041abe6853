-- Run by "dcache-probe migrate --grant-to ROLE": the least privileges the probe's runtime role
-- needs. The runner substitutes the quoted role and billing schema names (psql-style
-- :"role" / :"billing" placeholders, quoted as identifiers, never as text).
GRANT USAGE ON SCHEMA dcache_probe TO :"role";
-- INSERT: quarantine retry. (No UPDATE: since 008 the claim locks no queue row.)
GRANT SELECT, INSERT, DELETE ON dcache_probe.capture_queue TO :"role";
GRANT USAGE ON SEQUENCE dcache_probe.capture_queue_id_seq TO :"role";
GRANT SELECT, INSERT, DELETE ON dcache_probe.quarantine TO :"role";
GRANT SELECT, INSERT, DELETE ON dcache_probe.delivered_key TO :"role";
-- The claim's leases (migration 008): claimed, renewed (UPDATE), settled or given back.
GRANT SELECT, INSERT, UPDATE, DELETE ON dcache_probe.claim TO :"role";
GRANT USAGE ON SEQUENCE dcache_probe.claim_batch_seq TO :"role";
GRANT EXECUTE ON FUNCTION dcache_probe.leased_ids() TO :"role";                           -- the claim's picking (009)
GRANT SELECT ON dcache_probe.schema_migration TO :"role";
GRANT SELECT, INSERT, UPDATE ON dcache_probe.delivered_hour TO :"role";                -- the ledger (verify)
GRANT SELECT, INSERT, UPDATE ON dcache_probe.summary_state, dcache_probe.summary_group TO :"role";  -- Summarize mode
-- Transfer statistics and anomaly alerts (the dashboard): upserts, pruning, alerts opened and closed.
GRANT SELECT, INSERT, UPDATE, DELETE ON dcache_probe.stats_minute, dcache_probe.stats_hour, dcache_probe.stats_seen, dcache_probe.stats_alert TO :"role";
GRANT USAGE ON SEQUENCE dcache_probe.stats_alert_id_seq TO :"role";
-- Per-day totals and the hours of history counted (010): the delivery's upsert, pruning, the history builder.
GRANT SELECT, INSERT, UPDATE, DELETE ON dcache_probe.stats_day, dcache_probe.stats_history TO :"role";
-- Removals per day and the days counted (011): the daily removal step, pruning, the outlook.
GRANT SELECT, INSERT, UPDATE, DELETE ON dcache_probe.stats_removal_day, dcache_probe.stats_removal_counted TO :"role";
-- "dcache-probe backfill" / "import-checkpoint": their progress (SELECT ... FOR UPDATE needs UPDATE).
GRANT SELECT, INSERT, UPDATE ON dcache_probe.backfill_progress TO :"role";
GRANT USAGE, SELECT, UPDATE ON SEQUENCE dcache_probe.wake_armed, dcache_probe.wake_fired, dcache_probe.capture_failure TO :"role";
GRANT SELECT ON SEQUENCE dcache_probe.capture_queue_id_seq TO :"role";                   -- the rows-captured metric
GRANT EXECUTE ON FUNCTION dcache_probe.capture_barrier(integer) TO :"role";
GRANT USAGE ON SCHEMA :"billing" TO :"role";
GRANT SELECT ON :"billing".billinginfo, :"billing".doorinfo TO :"role";
-- storageinfo, when the billing database has it, is granted by the runner.
-- status and the probe's start-up check: what the capture needs (read from the catalogs only).
GRANT EXECUTE ON FUNCTION dcache_probe.capture_problems(), dcache_probe.capture_enabled() TO :"role";
