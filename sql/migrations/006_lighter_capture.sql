-- Migration 006: a lighter capture trigger (issue 6, "cost to dCache").
--
-- The benchmarks (docs/PERFORMANCE.md) found that most of what our triggers cost dCache's
-- inserts was the wake-up protocol, paid in every statement, and dCache inserts one row per
-- statement:
--   * the doorinfo trigger (dcache_probe_wake), which only woke the listener for a mover that
--     was waiting for its door row: a second PL/pgSQL call for every doorinfo row. The probe
--     now looks again by itself, on a short timer, while movers wait for their door row
--     (src/service/probe.ts), so the trigger goes.
--   * the advisory lock and the wake-up check (wake_listener(): a function call and two
--     sequence reads) in every capturing statement. They are now done once per transaction
--     (a transaction-local flag) with one read of both sequences, inside capture_rows.
--
-- Why once per transaction is enough: the shared capture lock, once taken, is held to the end
-- of the transaction. A transaction that read the old armed value in its first capturing
-- statement still holds the lock when the listener arms and runs its barrier, so the barrier
-- waits for the whole transaction, all its later statements included, before the listener's
-- last look at the queue. The protocol itself is unchanged (see 001_capture.sql).

-- Found by the function it calls (as uninstall does), so a billing schema renamed since 001
-- is no problem.
DO $drop$
DECLARE
    t record;
BEGIN
    FOR t IN
        SELECT tg.tgname, c.relname, n.nspname
          FROM pg_trigger tg
          JOIN pg_class c     ON c.oid = tg.tgrelid
          JOIN pg_namespace n ON n.oid = c.relnamespace
         WHERE tg.tgfoid = 'dcache_probe.wake_on_door()'::regprocedure
    LOOP
        EXECUTE format('DROP TRIGGER %I ON %I.%I', t.tgname, t.nspname, t.relname);
    END LOOP;
END
$drop$;
DROP FUNCTION dcache_probe.wake_on_door();

-- Same contract as before: never raises (dCache drops the whole batch when an insert fails);
-- on any error it counts the failure, warns, and lets dCache's insert go on.
CREATE OR REPLACE FUNCTION dcache_probe.capture_rows() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    armed bigint;
    fired bigint;
BEGIN
    BEGIN
        INSERT INTO dcache_probe.capture_queue (source, record)
        SELECT TG_TABLE_NAME, r
          FROM (SELECT to_jsonb(n) AS r FROM new_rows n) AS captured
         WHERE (r ->> 'p2p') IS DISTINCT FROM 'true';           -- pool-to-pool copies are internal
        -- The wake-up check, once per transaction (the flag reverts when it ends).
        IF current_setting('dcache_probe.wake_checked', true) IS DISTINCT FROM 'on' THEN
            PERFORM pg_advisory_xact_lock_shared(7262627701);  -- held to the end of the transaction
            PERFORM set_config('dcache_probe.wake_checked', 'on', true);
            SELECT a.last_value, f.last_value INTO armed, fired
              FROM dcache_probe.wake_armed a, dcache_probe.wake_fired f;
            IF armed > fired THEN
                PERFORM setval('dcache_probe.wake_fired', armed);
                PERFORM pg_notify('dcache_probe', '');
            END IF;
        END IF;
    EXCEPTION WHEN OTHERS THEN
        BEGIN
            PERFORM nextval('dcache_probe.capture_failure');
        EXCEPTION WHEN OTHERS THEN
            NULL;
        END;
        RAISE WARNING 'dcache-transfer-probe: could not capture % rows (%): %', TG_TABLE_NAME, SQLSTATE, SQLERRM;
    END;
    RETURN NULL;
END
$$;
REVOKE ALL ON FUNCTION dcache_probe.capture_rows() FROM PUBLIC;

-- capture_rows no longer calls it.
DROP FUNCTION dcache_probe.wake_listener();
