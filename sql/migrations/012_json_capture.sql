-- Migration 012: the capture copies each row as json, not jsonb (issue 15, "capture's own cost").
--
-- What dCache pays for our capture is almost all the copy: with 100-row commits our trigger
-- costs the writers' backends about 1.5x the database CPU per row of no trigger, and an empty
-- statement trigger with the same transition table 1.07x (`npm run bench -- --sections
-- x-narrow`, docs/PERFORMANCE.md). Of the copy, building the binary jsonb value (to_jsonb: every
-- value converted, keys sorted, a tree built) is the larger part; to_json writes the row's text
-- form and nothing more (about half the database CPU of to_jsonb per row in the same run). The
-- probe reads both the same way (pg parses either with JSON.parse), so the records sent do not
-- change; the probe's own reads of a field (record ->> 'initiator') parse the text instead, a
-- cost moved from dCache's insert to the probe's claim, where it belongs.
--
-- The column's type changes in place. ALTER ... TYPE rewrites the queue under an ACCESS
-- EXCLUSIVE lock: dCache's captured inserts wait while it runs (about a second per 100,000
-- queued rows on the bench machine; an empty queue, the usual case, takes no time). migrate
-- gets the lock with its usual LOCK_TIMEOUT_MS and retries (src/db/migrations.ts).
--
-- capture_problems() changes with it: the queue's record column must now be json, and the
-- capture calls to_json and strpos (a site may revoke EXECUTE from PUBLIC). The p2p filter reads
-- the json text instead of parsing it (see the function).
-- Everything else is 007's, unchanged.

ALTER TABLE dcache_probe.capture_queue ALTER COLUMN record TYPE json USING record::json;

-- ---------------------------------------------------------------------------------------
-- The capture function: 007's, with to_json for to_jsonb.
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
      FROM (SELECT to_json(n) AS r FROM new_rows n) AS captured
     -- Pool-to-pool copies are internal: p2p true (or the text 'true' of an old schema). Read
     -- from the json text, not with ->> (which parses the whole row again): to_json writes a
     -- key as "name": with no space, and inside a string value every " is escaped (\"), so
     -- the two patterns can only be the key p2p itself.
     WHERE strpos(r::text, '"p2p":true') = 0 AND strpos(r::text, '"p2p":"true"') = 0;
    RETURN NULL;
END
$$;
REVOKE ALL ON FUNCTION dcache_probe.capture_rows() FROM PUBLIC;

-- ---------------------------------------------------------------------------------------
-- What the capture needs: 007's list, with the json column and functions.
CREATE OR REPLACE FUNCTION dcache_probe.capture_problems() RETURNS text[]
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
           OR NOT EXISTS (SELECT FROM pg_attribute WHERE attrelid = queue AND attname = 'record' AND atttypid = 'json'::regtype AND NOT attisdropped) THEN
            problems := array_append(problems, 'dcache_probe.capture_queue lost its columns source (text) or record (json)');
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
            'pg_catalog.nextval(regclass)', 'pg_catalog.to_json(anyelement)',
            'pg_catalog.strpos(text,text)', 'pg_catalog.int4eq(integer,integer)', 'pg_catalog.texteq(text,text)',
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
