/**
 * The delivery key: the one definition of the dedup key of a billing row, md5 of
 * "<source>:<transaction>" as a uuid, in TypeScript (the live delivery reserves it in
 * dcache_probe.delivered_key) and as SQL (the backfill looks it up there, the quarantine's
 * retry releases it). They must agree to the bit: two keys for one transfer let it be
 * delivered twice (live, then by a backfill).
 *
 * The rule is the live path's, since that is what production delivered_key tables hold: the
 * transaction exactly as written, NOT trimmed (" t1 " and "t1" are different keys), hashed as
 * UTF-8 (the database's encoding).
 *
 * A row without a meaningful transaction is never keyed by the delivery: it refuses such a row
 * before it computes the key (mapping: "no transaction", quarantined at stage encode), so the
 * quarantine's retry has no key to release for it. The backfill's own test is narrower: it
 * skips a transaction that is absent or blank of spaces (btrim) as "no-transaction", but copies
 * one made only of tabs, or "<undefined>", which the delivery then quarantines as above (it was
 * so before the key had one definition). The functions below are total all the same (the empty
 * transaction has a key, md5("<source>:")), and both forms give the same one.
 */
import { createHash } from 'node:crypto';

/** The dedup key of a billing row: md5 of source and transaction (as written), as a uuid. */
export function deliveryKey(source: string, transaction: string): string {
  const hex = createHash('md5').update(`${source}:${transaction}`).digest('hex');
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

/**
 * The same key as a SQL expression (type uuid) over two text expressions, e.g.
 * deliveryKeySql('source', "record ->> 'transaction'"). Each is parenthesised: `||` and `->>`
 * bind alike in PostgreSQL, so an unparenthesised `->>` would apply to the concatenation.
 * A NULL transaction gives a NULL key (matches nothing).
 */
export function deliveryKeySql(sourceExpr: string, transactionExpr: string): string {
  return `md5((${sourceExpr}) || ':' || (${transactionExpr}))::uuid`;
}
