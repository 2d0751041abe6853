/**
 * 5. Encoding cost, in this process (no database, no network): what the probe spends per record
 * on mapping, XML and the urlencoded form, with the shipped functions; the XML also with the
 * string-built prototype of bench/experiments/fast-encode.ts and with the whole record through
 * fast-xml-parser's builder (as before the templates), which must produce the same bytes
 * (checked for every record). The form's bytes are checked against URLSearchParams by
 * test/xml.test.ts.
 *
 * The delivery's own path, as far as the bytes of the bodies, is measured both ways in one run:
 * before, a record's XML, then planBodies form-encoding it into a string body, which the HTTP
 * client (undici) turned into bytes (Buffer.from); now one pass per record (usageRecordForm:
 * escaped and encoded together, over a template form-encoded once per shape), then
 * planEncodedBodies writing the encoded lines straight into each body's bytes. DCACHE_PROBE_BENCH_ENCODE_BASELINE=<another build's dist/> times that build's
 * usageRecordXml + planBodies too, in the same process (e.g. a build of a758ecf, the code
 * before issue 15).
 *
 * The shipped functions are looked up at run time (other developers move them between modules),
 * so this file does not break the build when they do; a missing one makes the section "n/a".
 */
import { TransferGenerator, type Row } from '../src/tools/demo/simulator';
import { makeFastXml } from './experiments/fast-encode';

type Anything = any; // eslint-disable-line @typescript-eslint/no-explicit-any

function find(name: string, modules: string[]): Anything {
  for (const m of modules) {
    try {
      // eslint-disable-next-line @typescript-eslint/no-require-imports
      const mod = require(m);
      if (mod[name] !== undefined) return mod[name];
    } catch {
      /* not there */
    }
  }
  throw new Error(`cannot find ${name} in ${modules.join(', ')}`);
}

export interface EncodeResult {
  records: number;
  /** µs per record */
  mapUs: number;
  xmlUs: number;
  fastXmlUs: number;
  /** usageRecordXmlBuilt: the whole record through fast-xml-parser's builder (before the templates); NaN if absent */
  builtXmlUs: number;
  formUs: number;
  /** planBodies of 1,000-record bundles (bigger than maxBundleBytes: split in two), per record */
  planUs: number;
  identicalXml: boolean;
  bytesPerRecord: number;
  /** The delivery's path per record, 1,000-record bundles: XML, then planBodies, then the bytes (before); NaN if absent */
  xmlPlanUs: number;
  /** … now: usageRecordForm, then planEncodedBodies; and the two steps alone */
  onePassPlanUs: number;
  onePassUs: number;
  planEncodedUs: number;
  /** usageRecordForm gave what encoding the XML gives, and the same bodies */
  identicalForm: boolean;
  /** The same path in the build named by DCACHE_PROBE_BENCH_ENCODE_BASELINE (NaN without) */
  baselineXmlPlanUs: number;
  baselineDir?: string;
  error?: string;
}

/** jsonb's text form of a timestamptz, as the trigger's to_jsonb writes it. */
function pgTimestamp(d: Date): string {
  return d.toISOString().replace('Z', '+00:00');
}

function asJson(row: Row): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(row)) out[k] = v instanceof Date ? pgTimestamp(v) : v;
  return out;
}

/** CPU milliseconds (user+system of this process) per call: immune to a busy machine's waits. */
function timeIt(fn: () => void, minMs: number): number {
  fn(); // warm
  let runs = 0;
  const c0 = process.cpuUsage();
  const t0 = performance.now();
  do {
    fn();
    runs++;
  } while (performance.now() - t0 < minMs || runs < 3);
  const c = process.cpuUsage(c0);
  return (c.user + c.system) / 1000 / runs;
}

export function encodeBench(n = 4000, minMs = 400): EncodeResult {
  const empty = { records: n, mapUs: NaN, xmlUs: NaN, fastXmlUs: NaN, builtXmlUs: NaN, formUs: NaN, planUs: NaN, identicalXml: false, bytesPerRecord: NaN, xmlPlanUs: NaN, onePassPlanUs: NaN, onePassUs: NaN, planEncodedUs: NaN, identicalForm: false, baselineXmlPlanUs: NaN };
  try {
    const mapping = ['../src/record/mapping', '../src/mapping'];
    const mapRow = find('mapRow', mapping);
    const usageRecordXml = find('usageRecordXml', ['../src/record/xml', '../src/xml']);
    const multiupdateForm = find('multiupdateForm', ['../src/record/envelope', '../src/pipeline/sender', '../src/sender']);
    const planBodies = find('planBodies', ['../src/record/envelope', '../src/pipeline/sender', '../src/sender']);
    const maxBytes: number = find('MAX_BUNDLE_BYTES_LIMIT', ['../src/config/schema', '../src/config']);
    const fastXml = makeFastXml({
      xmlSafe: find('xmlSafe', ['../src/record/xml', '../src/xml']),
      isoDuration: find('isoDuration', ['../src/record/time', ...mapping]),
      rfc3339: find('rfc3339', ['../src/record/time', ...mapping]),
      EncodeError: find('EncodeError', ['../src/record/types', ...mapping]),
    });
    const options = { probeName: 'dcache-transfer:bench.example.org', siteName: 'BENCH', grid: 'OSG', dcacheServerHost: 'dcache.example.org', reportTape: true };

    const gen = new TransferGenerator({ seed: 3, p2pShare: 0 });
    const rows = Array.from({ length: n }, (_, i) => {
      const t = gen.next();
      return { id: String(i + 1), source: 'billinginfo', capturedAtMs: Date.now(), record: asJson(t.mover), datestampMs: (t.mover.datestamp as Date).getTime(), door: t.door ? asJson(t.door) : null };
    });
    let records: Anything[] = [];
    const mapMs = timeIt(() => {
      records = rows.map((r) => mapRow(r, options)).filter((m: Anything) => m.kind === 'record').map((m: Anything) => m.record);
    }, minMs);
    let xml: string[] = [];
    const xmlMs = timeIt(() => {
      xml = records.map((r) => usageRecordXml(r));
    }, minMs);
    let fast: string[] = [];
    const fastMs = timeIt(() => {
      fast = records.map((r) => fastXml(r));
    }, minMs);
    let built: string[] = xml;
    let builtMs = NaN;
    try {
      const usageRecordXmlBuilt = find('usageRecordXmlBuilt', ['../src/record/xml', '../src/xml']);
      builtMs = timeIt(() => {
        built = records.map((r) => usageRecordXmlBuilt(r));
      }, minMs);
    } catch {
      /* a build without the templates */
    }
    const identicalXml = xml.length === fast.length && xml.every((x, i) => x === fast[i] && x === built[i]);

    const bundles: string[][] = [];
    for (let i = 0; i < xml.length; i += 500) bundles.push(xml.slice(i, i + 500));
    let forms: string[] = [];
    const formMs = timeIt(() => {
      forms = bundles.map((b) => multiupdateForm(b, options.probeName, { backlog: 0 }));
    }, minMs);

    const big: string[][] = [];
    for (let i = 0; i < xml.length; i += 1000) big.push(xml.slice(i, i + 1000));
    const planMs = timeIt(() => {
      big.map((b) => planBodies(b, options.probeName, maxBytes, 0));
    }, minMs);

    // The delivery's path, before and now (bench/encode.ts's header).
    const onePass = onePassPath(records, options.probeName, maxBytes, minMs);
    const baselineDir = process.env.DCACHE_PROBE_BENCH_ENCODE_BASELINE;
    let baselineMs = NaN;
    if (baselineDir) {
      const xmlOf = find('usageRecordXml', [`${baselineDir}/src/record/xml`]);
      const planOf = find('planBodies', [`${baselineDir}/src/record/envelope`]);
      baselineMs = timeIt(() => {
        for (let i = 0; i < records.length; i += 1000) for (const b of planOf(records.slice(i, i + 1000).map((r) => xmlOf(r)), options.probeName, maxBytes, 0)) Buffer.from(b.form);
      }, minMs);
    }

    const per = (ms: number, count: number) => (ms * 1000) / count;
    return {
      records: records.length,
      mapUs: per(mapMs, rows.length),
      xmlUs: per(xmlMs, records.length),
      fastXmlUs: per(fastMs, records.length),
      builtXmlUs: per(builtMs, records.length),
      formUs: per(formMs, records.length),
      planUs: per(planMs, records.length),
      identicalXml,
      bytesPerRecord: forms.reduce((s, f) => s + f.length, 0) / records.length,
      xmlPlanUs: per(onePass.xmlPlanMs, records.length),
      onePassPlanUs: per(onePass.onePassPlanMs, records.length),
      onePassUs: per(onePass.onePassMs, records.length),
      planEncodedUs: per(onePass.planEncodedMs, records.length),
      identicalForm: onePass.identical,
      baselineXmlPlanUs: per(baselineMs, records.length),
      baselineDir,
    };
  } catch (err) {
    return { ...empty, error: (err as Error).message };
  }
}

/** The delivery's encoding of `records` in 1,000-record bundles, the way before and in one pass (CPU ms per run). */
function onePassPath(records: Anything[], probeName: string, maxBytes: number, minMs: number) {
  const usageRecordXml = find('usageRecordXml', ['../src/record/xml']);
  const planBodies = find('planBodies', ['../src/record/envelope']);
  let usageRecordForm: Anything;
  let planEncodedBodies: Anything;
  try {
    usageRecordForm = find('usageRecordForm', ['../src/record/xml']);
    planEncodedBodies = find('planEncodedBodies', ['../src/record/envelope']);
  } catch {
    return { xmlPlanMs: NaN, onePassPlanMs: NaN, onePassMs: NaN, planEncodedMs: NaN, identical: false };
  }
  const bundles: Anything[][] = [];
  for (let i = 0; i < records.length; i += 1000) bundles.push(records.slice(i, i + 1000));
  let before: Buffer[][] = [];
  let now: { form: Buffer }[][] = [];
  const xmlPlanMs = timeIt(() => {
    before = bundles.map((b) => planBodies(b.map((r) => usageRecordXml(r)), probeName, maxBytes, 0).map((body: { form: string }) => Buffer.from(body.form)));
  }, minMs);
  const onePassPlanMs = timeIt(() => {
    now = bundles.map((b) => planEncodedBodies(b.map((r) => usageRecordForm(r)), probeName, maxBytes, 0));
  }, minMs);
  let encoded: string[][] = [];
  const onePassMs = timeIt(() => {
    encoded = bundles.map((b) => b.map((r) => usageRecordForm(r)));
  }, minMs);
  const planEncodedMs = timeIt(() => {
    encoded.map((e) => planEncodedBodies(e, probeName, maxBytes, 0));
  }, minMs);
  const identical = before.length === now.length && before.every((bodies, i) => bodies.length === now[i]!.length && bodies.every((b, j) => b.equals(now[i]![j]!.form)));
  return { xmlPlanMs, onePassPlanMs, onePassMs, planEncodedMs, identical };
}
