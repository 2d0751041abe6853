-- Run by "dcache-probe uninstall" in one transaction: drops our triggers from dCache's tables
-- (found by the function they call, so a renamed billing schema is no problem) and then our
-- schema with everything in it. dCache's tables, views and data are not touched.
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
