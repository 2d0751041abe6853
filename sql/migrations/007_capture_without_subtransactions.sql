-- Migration 007: capture without subtransactions (issue 11, part 2).
--
-- Until 006 the capture function caught every error in an EXCEPTION block. In PL/pgSQL such a
-- block is a subtransaction, and ours wrote, so it took a subtransaction ID in every capturing
-- statement. dCache inserts one row per statement and up to ~1,000 rows per transaction: past
-- 64 subtransactions a transaction "overflows", and while any transaction is overflowed every
-- snapshot in the cluster must look into pg_subtrans (the SubtransSLRU contention that has
-- slowed busy primaries and hot standbys to a crawl).
--
-- Now nothing on dCache's insert path opens a subtransaction, and the promise "our trigger
-- never fails dCache's insert" is kept by construction instead of by catching:
--   * capture_rows checks once per transaction, with catalog lookups that cannot fail, that
--     the queue exists and may be written by its owner; when not, it skips the capture and
--     counts it in dcache_probe.capture_failure (status and run report it).
--   * it never waits for the wake-up lock: it tries it, and when the listener's barrier has
--     it, it notifies instead (see below).
--   * it notifies only while PostgreSQL's NOTIFY queue is less than half full: a full queue
--     fails the COMMIT; the probe's poll covers a skipped notification.
--   * an event trigger (installed when migrate runs as a superuser) refuses any DDL that
--     would leave enabled capture triggers with a queue they cannot write, or change the
--     capture function, except our own migrations. capture_problems() is the list of what the
--     capture needs, checked by the guard, by migrate and by status / run.
--   * autovacuum never truncates the queue (vacuum_truncate off): its truncation takes an
--     ACCESS EXCLUSIVE lock that dCache's inserts would wait behind, and the pages it keeps
--     are reused by later captures instead of extending the file.
-- docs/ARCHITECTURE.md ("How capture could fail, and what protects dCache") lists every
-- failure mode and its test.

-- ---------------------------------------------------------------------------------------
-- The capture function. Per statement: one current_setting() and the INSERT. Once per
-- transaction (a transaction-local setting, reverted when the transaction ends): the
-- writability check and the wake-up check.
--
-- Wake-up (the protocol of 001_capture.sql, unchanged on the listener's side): the shared
-- capture lock is only *tried*. It is not available only while the listener's barrier holds
-- or waits for it exclusively, i.e. after the listener armed: that barrier does not wait for
-- this transaction, so this transaction notifies unconditionally, and the notification
-- arrives after its commit. Otherwise the lock is held to the end of the transaction and the
-- barrier waits for it, as before.
CREATE OR REPLACE FUNCTION dcache_probe.capture_rows() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    state text := current_setting('dcache_probe.capture', true);   -- NULL or '': not checked yet
    armed bigint;
    fired bigint;
    wake boolean := false;
    counter regclass;
BEGIN
    IF state IS DISTINCT FROM 'on' THEN
        IF state IS DISTINCT FROM 'off' THEN
            -- The first capturing statement of this transaction: can the queue be written?
            -- Each lookup returns NULL rather than raising; the schema's USAGE is checked
            -- before a name in it is looked up (to_regclass raises without it).
            state := 'off';
            IF coalesce(has_schema_privilege(to_regnamespace('dcache_probe'), 'USAGE'), false) THEN
                IF coalesce(has_table_privilege(to_regclass('dcache_probe.capture_queue'), 'INSERT'), false) THEN
                    state := 'on';
                END IF;
            END IF;
            PERFORM set_config('dcache_probe.capture', state, true);
            -- The wake-up check, if its sequences and functions may be used (else the probe's
            -- poll finds the rows).
            IF state = 'on'
               AND coalesce(has_table_privilege(to_regclass('dcache_probe.wake_armed'), 'SELECT'), false)
               AND coalesce(has_table_privilege(to_regclass('dcache_probe.wake_fired'), 'SELECT, UPDATE'), false)
               AND has_function_privilege('pg_catalog.pg_try_advisory_xact_lock_shared(bigint)'::regprocedure, 'EXECUTE') THEN
                IF pg_try_advisory_xact_lock_shared(7262627701) THEN   -- held to the end of the transaction
                    SELECT a.last_value, f.last_value INTO armed, fired
                      FROM dcache_probe.wake_armed a, dcache_probe.wake_fired f;
                    wake := armed > fired;
                    IF wake AND has_function_privilege('pg_catalog.setval(regclass, bigint)'::regprocedure, 'EXECUTE') THEN
                        PERFORM setval('dcache_probe.wake_fired', armed);
                    END IF;
                ELSE
                    wake := true;                  -- the listener's barrier runs: it armed
                END IF;
                -- A full NOTIFY queue would fail the COMMIT: then leave it to the poll.
                IF wake AND has_function_privilege('pg_catalog.pg_notify(text, text)'::regprocedure, 'EXECUTE')
                   AND has_function_privilege('pg_catalog.pg_notification_queue_usage()'::regprocedure, 'EXECUTE') THEN
                    IF pg_notification_queue_usage() < 0.5 THEN
                        PERFORM pg_notify('dcache_probe', '');
                    END IF;
                END IF;
            END IF;
        END IF;
        IF state = 'off' THEN
            -- Not captured: count it where the counter can be reached, and let dCache go on.
            IF coalesce(has_schema_privilege(to_regnamespace('dcache_probe'), 'USAGE'), false) THEN
                counter := to_regclass('dcache_probe.capture_failure');
                IF coalesce(has_table_privilege(counter, 'UPDATE'), false)
                   AND EXISTS (SELECT FROM pg_class WHERE oid = counter AND relkind = 'S') THEN
                    PERFORM nextval(counter);
                END IF;
            END IF;
            RETURN NULL;
        END IF;
    END IF;
    INSERT INTO dcache_probe.capture_queue (source, record)
    SELECT TG_TABLE_NAME, r
      FROM (SELECT to_jsonb(n) AS r FROM new_rows n) AS captured
     WHERE (r ->> 'p2p') IS DISTINCT FROM 'true';               -- pool-to-pool copies are internal
    RETURN NULL;
END
$$;
REVOKE ALL ON FUNCTION dcache_probe.capture_rows() FROM PUBLIC;

-- ---------------------------------------------------------------------------------------
-- What the capture needs, as problems in words an operator can act on (empty: capture can
-- work). Checked against the catalogs for the capture function's owner; never raises. The one
-- definition of the rule, used by the guard below, by migrate and by status / run.
CREATE FUNCTION dcache_probe.capture_problems() RETURNS text[]
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    problems text[] := '{}';
    ns oid := to_regnamespace('dcache_probe');
    fn oid := to_regprocedure('dcache_probe.capture_rows()');
    owner oid;
    queue oid;
    t record;
BEGIN
    IF ns IS NULL THEN
        RETURN ARRAY['schema dcache_probe is missing (dropped or renamed): the capture cannot find its queue'];
    END IF;
    IF fn IS NULL THEN
        RETURN ARRAY['function dcache_probe.capture_rows() is missing (dropped or renamed)'];
    END IF;
    SELECT p.proowner INTO owner FROM pg_proc p WHERE p.oid = fn;
    IF NOT (SELECT p.prosecdef FROM pg_proc p WHERE p.oid = fn) THEN
        problems := array_append(problems, 'dcache_probe.capture_rows() is no longer SECURITY DEFINER: it would run with the privileges of dCache''s role');
    END IF;
    IF NOT coalesce((SELECT 'search_path=pg_catalog, pg_temp' = ANY (p.proconfig) FROM pg_proc p WHERE p.oid = fn), false) THEN
        problems := array_append(problems, 'dcache_probe.capture_rows() lost its fixed search_path (pg_catalog, pg_temp)');
    END IF;
    IF NOT has_schema_privilege(owner, ns, 'USAGE') THEN
        problems := array_append(problems, format('role %s (owner of the capture function) has no USAGE on schema dcache_probe', owner::regrole));
    END IF;

    -- The queue: there, a plain table, and nothing on it that can refuse a row.
    SELECT c.oid INTO queue FROM pg_class c WHERE c.relnamespace = ns AND c.relname = 'capture_queue' AND c.relkind = 'r';
    IF queue IS NULL THEN
        problems := array_append(problems, 'table dcache_probe.capture_queue is missing (dropped or renamed)');
    ELSE
        IF NOT has_table_privilege(owner, queue, 'INSERT') THEN
            problems := array_append(problems, format('role %s (owner of the capture function) may not INSERT into dcache_probe.capture_queue', owner::regrole));
        END IF;
        IF (SELECT c.relispartition OR c.relforcerowsecurity FROM pg_class c WHERE c.oid = queue) THEN
            problems := array_append(problems, 'dcache_probe.capture_queue was made a partition or given FORCE ROW LEVEL SECURITY: a row could be refused');
        END IF;
        IF NOT EXISTS (SELECT FROM pg_attribute WHERE attrelid = queue AND attname = 'source' AND atttypid = 'text'::regtype AND NOT attisdropped)
           OR NOT EXISTS (SELECT FROM pg_attribute WHERE attrelid = queue AND attname = 'record' AND atttypid = 'jsonb'::regtype AND NOT attisdropped) THEN
            problems := array_append(problems, 'dcache_probe.capture_queue lost its columns source (text) or record (jsonb)');
        END IF;
        FOR t IN
            SELECT a.attname FROM pg_attribute a
             WHERE a.attrelid = queue AND a.attnum > 0 AND NOT a.attisdropped AND a.attnotnull
               AND NOT a.atthasdef AND a.attidentity = '' AND a.attgenerated = ''
               AND a.attname NOT IN ('source', 'record')
        LOOP
            problems := array_append(problems, format('column %I of dcache_probe.capture_queue is NOT NULL without a default: the capture does not fill it', t.attname));
        END LOOP;
        FOR t IN
            SELECT c.conname FROM pg_constraint c
             WHERE c.conrelid = queue AND c.contype NOT IN ('p', 'n')
        LOOP
            problems := array_append(problems, format('constraint %I on dcache_probe.capture_queue could refuse a captured row', t.conname));
        END LOOP;
        FOR t IN
            SELECT ic.relname FROM pg_index i JOIN pg_class ic ON ic.oid = i.indexrelid
             WHERE i.indrelid = queue
               AND ((i.indisunique AND NOT i.indisprimary) OR i.indexprs IS NOT NULL
                    -- a predicate can raise, except "column IS [NOT] NULL"
                    OR pg_get_expr(i.indpred, i.indrelid) !~ '^\(?[a-z_][a-z0-9_]* IS (NOT )?NULL\)?$'
                    OR (SELECT attnum FROM pg_attribute WHERE attrelid = queue AND attname = 'record') = ANY (i.indkey))
        LOOP
            problems := array_append(problems, format('index %I on dcache_probe.capture_queue could refuse a captured row (unique, on an expression, with a predicate other than "column IS [NOT] NULL", or on record)', t.relname));
        END LOOP;
        FOR t IN SELECT tg.tgname FROM pg_trigger tg WHERE tg.tgrelid = queue AND NOT tg.tgisinternal LOOP
            problems := array_append(problems, format('trigger %I on dcache_probe.capture_queue could refuse a captured row', t.tgname));
        END LOOP;
        FOR t IN SELECT r.rulename FROM pg_rewrite r WHERE r.ev_class = queue LOOP
            problems := array_append(problems, format('rule %I on dcache_probe.capture_queue changes what the capture does', t.rulename));
        END LOOP;
    END IF;

    -- The wake-up's sequences (the capture works without them, but never wakes the listener).
    FOR t IN
        SELECT s.name, c.oid, sq.seqmax
          FROM unnest(ARRAY['wake_armed', 'wake_fired']) AS s(name)
          LEFT JOIN pg_class c ON c.relnamespace = ns AND c.relname = s.name AND c.relkind = 'S'
          LEFT JOIN pg_sequence sq ON sq.seqrelid = c.oid
    LOOP
        IF t.oid IS NULL THEN
            problems := array_append(problems, format('sequence dcache_probe.%I is missing: the capture cannot wake the probe (it polls)', t.name));
        ELSIF NOT has_sequence_privilege(owner, t.oid, CASE t.name WHEN 'wake_fired' THEN 'SELECT, UPDATE' ELSE 'SELECT' END) THEN
            problems := array_append(problems, format('role %s (owner of the capture function) may not read dcache_probe.%I', owner::regrole, t.name));
        ELSIF t.seqmax < 4611686018427387904 THEN
            problems := array_append(problems, format('sequence dcache_probe.%I was given a low MAXVALUE: setval would fail', t.name));
        END IF;
    END LOOP;

    -- Functions the capture calls (a site may revoke EXECUTE from PUBLIC).
    FOR t IN
        SELECT f.sig FROM unnest(ARRAY[
            'pg_catalog.current_setting(text,boolean)', 'pg_catalog.set_config(text,text,boolean)',
            'pg_catalog.to_regnamespace(text)', 'pg_catalog.to_regclass(text)',
            'pg_catalog.has_schema_privilege(oid,text)', 'pg_catalog.has_table_privilege(oid,text)',
            'pg_catalog.has_function_privilege(oid,text)',
            'pg_catalog.pg_try_advisory_xact_lock_shared(bigint)', 'pg_catalog.setval(regclass,bigint)',
            'pg_catalog.pg_notification_queue_usage()', 'pg_catalog.pg_notify(text,text)',
            'pg_catalog.nextval(regclass)', 'pg_catalog.to_jsonb(anyelement)',
            'pg_catalog.jsonb_object_field_text(jsonb,text)', 'pg_catalog.texteq(text,text)',
            'pg_catalog.int8gt(bigint,bigint)', 'pg_catalog.statement_timestamp()'
        ]) AS f(sig)
         WHERE NOT coalesce(has_function_privilege(owner, to_regprocedure(f.sig), 'EXECUTE'), false)
    LOOP
        problems := array_append(problems, format('role %s (owner of the capture function) may not EXECUTE %s', owner::regrole, t.sig));
    END LOOP;

    -- The capture triggers must be what the function expects: statement level, after insert,
    -- with the transition table new_rows.
    FOR t IN
        SELECT tg.tgname, tg.tgrelid::regclass AS tbl FROM pg_trigger tg
         WHERE tg.tgfoid = fn
           AND ((tg.tgtype & 1) <> 0 OR (tg.tgtype & 66) <> 0 OR tg.tgnewtable IS DISTINCT FROM 'new_rows')
    LOOP
        problems := array_append(problems, format('trigger %I on %s calls the capture function but is not AFTER … REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT', t.tgname, t.tbl));
    END LOOP;

    -- Our transaction-local settings must not have defaults for a database or role.
    IF EXISTS (SELECT FROM pg_db_role_setting s, unnest(s.setconfig) AS c(v) WHERE c.v LIKE 'dcache\_probe.%') THEN
        problems := array_append(problems, 'a database or role default sets a dcache_probe.* setting (ALTER DATABASE/ROLE … RESET it): the capture uses them per transaction');
    END IF;
    RETURN problems;
END
$$;

-- ---------------------------------------------------------------------------------------
-- The guard: two event triggers. Before a DDL command it notes the capture's problems, after
-- it compares: a command that adds a problem while an enabled capture trigger exists is
-- refused (its transaction rolls back), and so is any change to the capture function itself.
-- Our own migrate / uninstall / grant set dcache_probe.migrating for their transaction.
-- Refusing only *new* problems means a capture already broken by something the guard cannot
-- see (a role changed, say) never blocks dCache's own schema upgrades.
--
-- Both functions are SECURITY DEFINER: event triggers run for every role's DDL, and a
-- function run as the caller would both fail for roles without USAGE on our schema and run
-- our owner's code with a superuser's privileges.

-- Enabled triggers that call the capture, also after our schema or the function was renamed.
CREATE FUNCTION dcache_probe.capture_enabled() RETURNS boolean
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$
    SELECT EXISTS (
        SELECT FROM pg_trigger tg JOIN pg_proc p ON p.oid = tg.tgfoid
         WHERE NOT tg.tgisinternal AND tg.tgenabled <> 'D'
           AND (tg.tgname = 'dcache_probe_capture' OR p.oid = to_regprocedure('dcache_probe.capture_rows()')))
$$;

CREATE FUNCTION dcache_probe.guard_start() RETURNS event_trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    before text[] := '{}';
BEGIN
    IF current_setting('dcache_probe.migrating', true) = 'on' THEN
        RETURN;
    END IF;
    BEGIN
        IF dcache_probe.capture_enabled() THEN
            before := dcache_probe.capture_problems();
        END IF;
    EXCEPTION WHEN OTHERS THEN
        before := ARRAY['the check failed: ' || SQLERRM];
    END;
    PERFORM set_config('dcache_probe.guard_before', before::text, true);
END
$$;

CREATE FUNCTION dcache_probe.guard_end() RETURNS event_trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    before text[];
    after text[] := '{}';
    added text[];
    touched text;
BEGIN
    IF current_setting('dcache_probe.migrating', true) = 'on' THEN
        RETURN;
    END IF;
    BEGIN
        before := coalesce(nullif(current_setting('dcache_probe.guard_before', true), ''), '{}')::text[];
        -- Names resolved now, after the command: a renamed schema is a problem, not an error.
        IF to_regnamespace('dcache_probe') IS NULL THEN
            IF EXISTS (SELECT FROM pg_trigger WHERE tgname = 'dcache_probe_capture' AND tgenabled <> 'D') THEN
                after := ARRAY['schema dcache_probe is missing (dropped or renamed): the capture cannot find its queue'];
            END IF;
        ELSIF dcache_probe.capture_enabled() THEN
            after := dcache_probe.capture_problems();
            SELECT string_agg(DISTINCT c.object_identity, ', ') INTO touched
              FROM pg_event_trigger_ddl_commands() c
             WHERE c.classid = 'pg_proc'::regclass AND c.objid = to_regprocedure('dcache_probe.capture_rows()');
            IF touched IS NOT NULL THEN
                after := array_append(after, 'the capture function ' || touched || ' is changed only by "dcache-probe migrate"');
            END IF;
        END IF;
        SELECT array_agg(p) INTO added FROM unnest(after) AS p WHERE p <> ALL (before);
    EXCEPTION WHEN OTHERS THEN
        RAISE WARNING 'dcache-transfer-probe: the capture guard could not check this command: %', SQLERRM;
        RETURN;
    END;
    IF added IS NOT NULL THEN
        RAISE EXCEPTION 'dcache-transfer-probe: refused: after this command the capture trigger on dCache''s billing tables could not work, and dCache''s inserts would fail: %', array_to_string(added, '; ')
            USING ERRCODE = 'dependent_objects_still_exist',
                  HINT = 'Run "dcache-probe uninstall" first, or disable the trigger (ALTER TABLE billinginfo DISABLE TRIGGER dcache_probe_capture), or change the probe''s schema with "dcache-probe migrate".';
    END IF;
END
$$;

-- Installs (or re-enables) the guard when the current role is a superuser (event triggers need
-- one); returns whether the guard is in place. migrate calls it on every run, so a site that
-- installed as the tables' owner gets the guard by running migrate once as a superuser.
CREATE FUNCTION dcache_probe.install_guard() RETURNS boolean
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF NOT (SELECT rolsuper FROM pg_roles WHERE rolname = current_user) THEN
        RETURN (SELECT count(*) = 2 FROM pg_event_trigger
                 WHERE evtname IN ('dcache_probe_guard_start', 'dcache_probe_guard_end') AND evtenabled <> 'D');
    END IF;
    IF NOT EXISTS (SELECT FROM pg_event_trigger WHERE evtname = 'dcache_probe_guard_start') THEN
        CREATE EVENT TRIGGER dcache_probe_guard_start ON ddl_command_start EXECUTE FUNCTION dcache_probe.guard_start();
    END IF;
    IF NOT EXISTS (SELECT FROM pg_event_trigger WHERE evtname = 'dcache_probe_guard_end') THEN
        CREATE EVENT TRIGGER dcache_probe_guard_end ON ddl_command_end EXECUTE FUNCTION dcache_probe.guard_end();
    END IF;
    ALTER EVENT TRIGGER dcache_probe_guard_start ENABLE;
    ALTER EVENT TRIGGER dcache_probe_guard_end ENABLE;
    RETURN true;
END
$$;

REVOKE ALL ON FUNCTION dcache_probe.capture_problems() FROM PUBLIC;
REVOKE ALL ON FUNCTION dcache_probe.capture_enabled() FROM PUBLIC;
REVOKE ALL ON FUNCTION dcache_probe.guard_start() FROM PUBLIC;
REVOKE ALL ON FUNCTION dcache_probe.guard_end() FROM PUBLIC;
REVOKE ALL ON FUNCTION dcache_probe.install_guard() FROM PUBLIC;

SELECT dcache_probe.install_guard();

-- No ACCESS EXCLUSIVE lock from autovacuum's truncation (this takes SHARE UPDATE EXCLUSIVE,
-- which dCache's inserts do not wait for).
ALTER TABLE dcache_probe.capture_queue SET (vacuum_truncate = false, toast.vacuum_truncate = false);
