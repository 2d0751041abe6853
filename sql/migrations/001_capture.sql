-- Migration 001: capture queue, wake-up protocol and the capture triggers.
--
-- Everything of ours lives in the schema "dcache_probe"; the only objects we put on dCache's
-- tables are triggers named "dcache_probe_*". The billing schema is read from the session
-- setting dcache_probe.billing_schema (the migration runner sets it) and always quoted with %I.
--
-- The runner executes this file inside one transaction, after sql/bootstrap.sql.

-- One row per captured billing row, written inside dCache's own insert transaction, so a row
-- is in the queue if and only if dCache's insert committed. The whole row is kept as jsonb:
-- that works unchanged for the modern and the legacy (pre-Liquibase) column types and for
-- columns that only some dCache versions have.
CREATE TABLE dcache_probe.capture_queue (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    source      text        NOT NULL,                       -- 'billinginfo' | 'storageinfo'
    captured_at timestamptz NOT NULL DEFAULT statement_timestamp(),
    record      jsonb       NOT NULL
);

-- Rows that could not be turned into a record, or that the collector refused, kept with the
-- reason until an operator retries or drops them.
CREATE TABLE dcache_probe.quarantine (
    id             bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    source         text        NOT NULL,
    captured_at    timestamptz NOT NULL,
    record         jsonb       NOT NULL,
    door           jsonb,
    stage          text        NOT NULL,                    -- 'encode' | 'identity' | 'collector'
    reason         text        NOT NULL,
    quarantined_at timestamptz NOT NULL DEFAULT now()
);

-- Keys of recently delivered rows (md5 of source and transaction). Two billing cells insert
-- every record twice; the unique key makes the second copy a no-op, also across probes,
-- because an uncommitted key blocks a concurrent insert of the same key until the first
-- delivery commits or rolls back.
CREATE TABLE dcache_probe.delivered_key (
    key          uuid        PRIMARY KEY,
    delivered_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX delivered_key_delivered_at ON dcache_probe.delivered_key (delivered_at);

-- Counters that must survive a rolled-back transaction are sequences (nextval/setval are not
-- transactional).
--   capture_failure: bumped by a trigger that could not capture (it never raises instead).
--   wake_armed / wake_fired: the wake-up protocol below.
CREATE SEQUENCE dcache_probe.capture_failure;
CREATE SEQUENCE dcache_probe.wake_armed;
CREATE SEQUENCE dcache_probe.wake_fired;
-- Start both as "called" at 1, so the first nextval(wake_armed) yields 2 > wake_fired.
SELECT setval('dcache_probe.wake_armed', 1, true), setval('dcache_probe.wake_fired', 1, true);

-- Wake-up protocol.
--
-- A NOTIFY in every inserting transaction serialises dCache's commits (PostgreSQL holds a
-- global lock from NOTIFY's pre-commit to the end of commit). So a transaction notifies only
-- when the listener has said it is idle: the listener "arms" by nextval(wake_armed); the
-- first capturing transaction that sees wake_armed > wake_fired sets wake_fired and
-- notifies; everyone else only reads two sequences (never blocked, never blocking).
--
-- A transaction that saw the old armed value must not be stranded: every capture first takes
-- the shared advisory lock below, and after arming the listener takes the same lock
-- exclusively (with a short lock_timeout) before its last look at the queue. That waits for
-- exactly the transactions that may have read the old value; any later one sees the new one.
-- Under load the listener never arms, so no transaction notifies at all.
CREATE FUNCTION dcache_probe.wake_listener() RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    armed bigint;
    fired bigint;
BEGIN
    SELECT last_value INTO armed FROM dcache_probe.wake_armed;
    SELECT last_value INTO fired FROM dcache_probe.wake_fired;
    IF armed > fired THEN
        PERFORM setval('dcache_probe.wake_fired', armed);
        PERFORM pg_notify('dcache_probe', '');
    END IF;
END
$$;

-- Statement-level capture trigger for billinginfo and storageinfo. It must never raise: dCache
-- retries a failed insert once and then drops the whole batch. On any error it counts the
-- failure, warns, and lets dCache's insert go on.
CREATE FUNCTION dcache_probe.capture_rows() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    BEGIN
        PERFORM pg_advisory_xact_lock_shared(7262627701);   -- see the wake-up protocol above
        INSERT INTO dcache_probe.capture_queue (source, record)
        SELECT TG_TABLE_NAME, r
          FROM (SELECT to_jsonb(n) AS r FROM new_rows n) AS captured
         WHERE (r ->> 'p2p') IS DISTINCT FROM 'true';           -- pool-to-pool copies are internal
        PERFORM dcache_probe.wake_listener();
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

-- doorinfo rows are not captured, but a mover may be waiting for its door row: wake the
-- listener so it looks again.
CREATE FUNCTION dcache_probe.wake_on_door() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    BEGIN
        PERFORM pg_advisory_xact_lock_shared(7262627701);
        PERFORM dcache_probe.wake_listener();
    EXCEPTION WHEN OTHERS THEN
        RAISE WARNING 'dcache-transfer-probe: could not wake the listener (%): %', SQLSTATE, SQLERRM;
    END;
    RETURN NULL;
END
$$;

-- The listener's barrier: waits (at most timeout_ms) until no capturing transaction that may
-- have read an old armed value is still open. Taking and releasing the exclusive lock inside
-- one statement means the lock is never held across a network round trip: a connection lost at
-- the wrong moment can never leave dCache's inserts waiting behind it. Returns false on timeout.
CREATE FUNCTION dcache_probe.capture_barrier(timeout_ms integer) RETURNS boolean
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    PERFORM set_config('lock_timeout', greatest(timeout_ms, 1)::text, true);
    PERFORM pg_advisory_xact_lock(7262627701);
    RETURN true;
EXCEPTION WHEN lock_not_available THEN
    RETURN false;
END
$$;

-- Reads a billing timestamp (timestamptz text with offset, or legacy timestamp text without
-- one, then read in the session's TimeZone) as epoch milliseconds; NULL if unreadable. A bad
-- value must become a quarantined row, never a failed claim that stops the queue.
CREATE FUNCTION dcache_probe.epoch_ms(value text) RETURNS bigint
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    RETURN floor(extract(epoch FROM value::timestamptz) * 1000)::bigint;
EXCEPTION WHEN OTHERS THEN
    RETURN NULL;
END
$$;

DO $install$
DECLARE
    billing text := current_setting('dcache_probe.billing_schema');
BEGIN
    IF to_regclass(format('%I.billinginfo', billing)) IS NULL THEN
        RAISE EXCEPTION 'no table %.billinginfo: is this the dCache billing database (and the right --billing-schema)?', billing;
    END IF;
    -- "dcache-probe migrate --no-triggers": sites that may not put triggers on dCache's tables
    -- run the probe in poll mode (it reads billinginfo by datestamp windows instead).
    IF current_setting('dcache_probe.no_triggers', true) = 'on' THEN
        RETURN;
    END IF;
    EXECUTE format('CREATE TRIGGER dcache_probe_capture AFTER INSERT ON %I.billinginfo
                    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT
                    EXECUTE FUNCTION dcache_probe.capture_rows()', billing);
    IF to_regclass(format('%I.storageinfo', billing)) IS NOT NULL THEN
        EXECUTE format('CREATE TRIGGER dcache_probe_capture AFTER INSERT ON %I.storageinfo
                        REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT
                        EXECUTE FUNCTION dcache_probe.capture_rows()', billing);
    END IF;
    IF to_regclass(format('%I.doorinfo', billing)) IS NOT NULL THEN
        EXECUTE format('CREATE TRIGGER dcache_probe_wake AFTER INSERT ON %I.doorinfo
                        FOR EACH STATEMENT EXECUTE FUNCTION dcache_probe.wake_on_door()', billing);
    END IF;
END
$install$;

REVOKE ALL ON FUNCTION dcache_probe.wake_listener() FROM PUBLIC;
REVOKE ALL ON FUNCTION dcache_probe.capture_rows() FROM PUBLIC;
REVOKE ALL ON FUNCTION dcache_probe.wake_on_door() FROM PUBLIC;
