-- Run by "dcache-probe uninstall" in one transaction: drops our triggers from dCache's tables
-- (found by the function they call, so a renamed billing schema is no problem) first, so that
-- no capture trigger is ever left without its queue, and then our schema with everything in
-- it, the guard's event triggers included (they depend on its functions). dCache's tables,
-- views and data are not touched. The runner flags the transaction as ours
-- (dcache_probe.migrating), so the guard lets it through, and gives it a short lock_timeout
-- (DROP TRIGGER locks dCache's table: its inserts must not queue behind us for long).
DO $uninstall$
DECLARE
    t record;
BEGIN
    FOR t IN
        SELECT tg.tgname, c.relname, n.nspname
          FROM pg_trigger tg
          JOIN pg_class c      ON c.oid = tg.tgrelid
          JOIN pg_namespace n  ON n.oid = c.relnamespace
          JOIN pg_proc p       ON p.oid = tg.tgfoid
          JOIN pg_namespace pn ON pn.oid = p.pronamespace
         WHERE pn.nspname = 'dcache_probe' AND NOT tg.tgisinternal
    LOOP
        EXECUTE format('DROP TRIGGER %I ON %I.%I', t.tgname, t.nspname, t.relname);
    END LOOP;
END
$uninstall$;

DROP SCHEMA IF EXISTS dcache_probe CASCADE;
