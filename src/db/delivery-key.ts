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
 * An empty or blank transaction is never keyed, by any path: the delivery refuses such a row
 * before it computes the key (mapping: "no transaction", quarantined at stage encode); the
 * backfill skips a row whose transaction is absent or blank (btrim, spaces only) as
 * "no-transaction"; so the quarantine's retry has no key to release for it (the key it would
 * name was never reserved). The functions below are total all the same (the empty transaction
 * has a key, md5("<source>:")), and both forms give the same one.
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
