-- Migration 008: claim batches with a lease, not with a transaction held open (issue 11).
--
-- Until 007 a batch's queue rows were locked FOR UPDATE in a transaction that stayed open
-- through the POST to the collector and all its retries (16.9 s measured with a slow and then
-- failing collector). An open transaction with an XID holds back vacuum's horizon for the
-- billing tables and the queue, and widens the range of XIDs every snapshot must check.
--
-- Now a batch is claimed in a short transaction that records a lease (one row per batch, not
-- one write per queue row) and reserves the batch's delivery keys; it commits before anything
-- is sent. While the records are on their way, the probe renews the lease with one-statement
-- transactions; the acknowledgement (rows deleted, keys kept, ledger) is another short
-- transaction, and it commits only if the lease is still this batch's (a fence: a probe whose
-- lease expired and was taken over changes nothing). See src/db/queue.ts for the statements and
-- docs/ARCHITECTURE.md ("The claim") for why this design and not per-row locks.

-- A lease on some queue rows. ids: the rows; keys: the delivery keys the claim reserved
-- (delivered_key rows with this batch), so that an expired lease can give them back.
-- A delivered_key row whose batch has no claim row any more is delivered; one whose batch is
-- still here is in flight.
CREATE TABLE dcache_probe.claim (
    batch        bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    owner        text        NOT NULL,                  -- "<host>:<pid>:<random>" of the probe process
    ids          bigint[]    NOT NULL,
    keys         uuid[]      NOT NULL,
    claimed_at   timestamptz NOT NULL DEFAULT now(),
    leased_until timestamptz NOT NULL
);

-- Which claim reserved a key (NULL for keys written before 008: all delivered).
-- Adding a nullable column without a default only changes the catalogue.
SET LOCAL lock_timeout = '5s';
ALTER TABLE dcache_probe.delivered_key ADD COLUMN batch bigint;
