-- Migration 009: the ids live leases hold, as a set the planner always sizes the same.
--
-- The claim leaves out rows a lease holds with "q.id NOT IN (<the leased ids>)", which must be
-- a hashed subplan. Written as a subquery on dcache_probe.claim, the planner sized it from the
-- table's pages; every batch leaves a few kB of dead versions there until vacuum comes (the
-- ids array is copied into each version), and past about 650 batches' worth (3.6-4.2 MB) the
-- subplan was no longer hashed: each pick of 500 went from about 8 ms to 750-1,200 ms, under
-- the claim lock (bench/claim-ab.ts --pick-growth, docs/PERFORMANCE.md). At a site that is a
-- catch-up right after migrate, or any long transaction elsewhere that keeps vacuum from
-- removing them. A function with a declared row count is opaque to the planner (SET keeps it
-- from being inlined), so the estimate no longer depends on the table's size.
CREATE FUNCTION dcache_probe.leased_ids() RETURNS SETOF bigint
LANGUAGE sql STABLE ROWS 1000 SET search_path = pg_catalog, pg_temp AS
$$ SELECT unnest(ids) FROM dcache_probe.claim $$;
REVOKE ALL ON FUNCTION dcache_probe.leased_ids() FROM PUBLIC;
