import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { XMLBuilder, XMLParser, XMLValidator } from 'fast-xml-parser';
import type { UsageRecord } from '../src/record/mapping';
import { encodedRecord, formEncode, multiupdateForm, planBodies, planEncodedBodies, recordEnvelope } from '../src/record/envelope';
import { usageRecordForm, usageRecordXml, usageRecordXmlBuilt, xmlSafe, xmlText } from '../src/record/xml';
import { mapRow } from '../src/record/mapping';
import { TransferGenerator } from '../src/tools/demo/simulator';
import { parseEnvelope } from '../src/tools/collector/envelope';
import { parseForm } from '../src/tools/collector/server';
import { SAMPLE_RECORD } from './helpers/records';

const RECORD = SAMPLE_RECORD;

const elementOrder = (xml: string) => [...xml.matchAll(/<([A-Za-z]+)[\s>/]/g)].map((m) => m[1]);

describe('JobUsageRecord XML', () => {
  it('has the ur-wg namespaces and schema location on the root element', () => {
    const xml = usageRecordXml(RECORD);
    assert.match(xml, /^<JobUsageRecord xmlns="http:\/\/www\.gridforum\.org\/2003\/ur-wg" xmlns:urwg="http:\/\/www\.gridforum\.org\/2003\/ur-wg" xmlns:xsi="http:\/\/www\.w3\.org\/2001\/XMLSchema-instance" xsi:schemaLocation="http:\/\/www\.gridforum\.org\/2003\/ur-wg file:\/\/\/u:\/OSG\/urwg-schema\.11\.xsd">/);
    assert.equal(XMLValidator.validate(xml), true);
  });

  it('writes the elements in the Gratia library order, EndTime after StartTime', () => {
    assert.deepEqual(elementOrder(usageRecordXml(RECORD)), [
      'JobUsageRecord', 'RecordIdentity', 'JobIdentity', 'LocalJobId', 'UserIdentity', 'DN', 'LocalUserId', 'VOName', 'ReportableVOName',
      'Resource', 'Resource', 'Resource', 'Resource', 'StartTime', 'EndTime', 'Network', 'WallDuration', 'SubmitHost', 'Status',
      'ProbeName', 'SiteName', 'Grid', 'Njobs', 'Resource',
    ]);
  });

  it('writes each field as the collector reads it', () => {
    const xml = usageRecordXml(RECORD);
    assert.ok(xml.includes('<RecordIdentity urwg:recordId="dcache-transfer:probe.example.org:pool:p1@d:1-1" urwg:createTime="2024-03-14T18:32:00Z"/>'));
    assert.ok(xml.includes('<StartTime>2024-03-14T18:31:48.589Z</StartTime><EndTime>2024-03-14T18:31:57.123Z</EndTime>'));
    assert.ok(xml.includes('<Network urwg:storageUnit="b" urwg:phaseUnit="PT8.534S" urwg:metric="total" urwg:description="transfer">964544</Network>'));
    assert.ok(xml.includes('<WallDuration>PT8.534S</WallDuration>'));
    assert.ok(xml.includes('<Resource urwg:description="IsNew">0</Resource>'));
    assert.ok(xml.includes('<Njobs>1</Njobs><Resource urwg:description="ResourceType">Storage</Resource></JobUsageRecord>'));
  });

  it('leaves out identity elements it does not know', () => {
    const xml = usageRecordXml({ ...RECORD, dn: undefined, voName: undefined, reportableVoName: undefined, submitHost: undefined });
    assert.ok(!/<DN>|<VOName>|<SubmitHost>/.test(xml));
    assert.ok(xml.includes('<UserIdentity><LocalUserId>'));
  });

  it('escapes markup characters in text and attributes', () => {
    const xml = usageRecordXml({ ...RECORD, dn: '/CN=a <&> "b" \'c\'', recordId: 'id&"<' });
    assert.equal(XMLValidator.validate(xml), true);
    const parsed = new XMLParser({ ignoreAttributes: false, removeNSPrefix: true, attributeNamePrefix: '@' }).parse(xml);
    assert.equal(parsed.JobUsageRecord.UserIdentity.DN, '/CN=a <&> "b" \'c\'');
    assert.equal(parsed.JobUsageRecord.RecordIdentity['@recordId'], 'id&"<');
  });

  it('removes characters XML 1.0 forbids and lone surrogates, keeping valid UTF-8 text', () => {
    assert.equal(xmlSafe('a\u0001b\u0008c\td\ne\u001Ff\uFFFEg\uD800h'), 'abc\td\nefgh');
    assert.equal(xmlSafe('Zoë 🚀 Ünïcode'), 'Zoë 🚀 Ünïcode');
    const xml = usageRecordXml({ ...RECORD, localUserId: 'user\u0007name', submitHost: 'host\u0000' });
    assert.equal(XMLValidator.validate(xml), true);
    assert.ok(xml.includes('<LocalUserId>username</LocalUserId>'));
  });

  it("escapes exactly as fast-xml-parser's own entity processing does (records stay byte-identical)", () => {
    const reference = new XMLBuilder({ preserveOrder: true, ignoreAttributes: false, attributeNamePrefix: '', format: false });
    const alphabet = ['a', 'Z', '0', ' ', '&', '<', '>', '"', "'", ';', '#', 'é', '🚀', '&amp;', '\t', '\n'];
    let seed = 42;
    const random = () => ((seed = (seed * 1103515245 + 12345) % 2147483648) / 2147483648);
    for (let i = 0; i < 2000; i++) {
      const value = Array.from({ length: 1 + Math.floor(random() * 12) }, () => alphabet[Math.floor(random() * alphabet.length)]).join('');
      const expected = reference.build([{ X: [{ '#text': value }], ':@': { a: value } }]) as string;
      assert.equal(`<X a="${xmlText(value)}">${xmlText(value)}</X>`, expected, JSON.stringify(value));
    }
  });

  it('is byte-identical for the same record', () => {
    assert.equal(usageRecordXml({ ...RECORD }), usageRecordXml({ ...RECORD }));
  });
});

describe('record templates (the builder once per record shape)', () => {
  const AWKWARD = ['', ' ', '&', '<>', '"\'', '&amp;', 'a\u0001b', '\u0001', '\u00010\u0001', 'Zoë 🚀', '\uD800', 'x\ty\nz\r', ']]>', '<!-- -->'];

  it('write every record byte for byte as building it whole with fast-xml-parser does', () => {
    const options = { probeName: 'dcache-transfer:test.example.org', siteName: 'TEST', grid: 'OSG', dcacheServerHost: 'dcache.example.org', reportTape: true };
    const generator = new TransferGenerator({ seed: 17, p2pShare: 0, errorShare: 0.1, noDoorShare: 0.1 });
    let compared = 0;
    for (let i = 0; i < 3000; i++) {
      const t = generator.next();
      const json = (row: Record<string, unknown>) => JSON.parse(JSON.stringify(row)) as Record<string, unknown>;
      const mapped = mapRow({ id: String(i), source: 'billinginfo', capturedAtMs: Date.now(), record: json(t.mover), datestampMs: (t.mover.datestamp as Date).getTime(), door: t.door ? json(t.door) : null }, options);
      if (mapped.kind !== 'record') continue;
      assert.equal(usageRecordXml(mapped.record), usageRecordXmlBuilt(mapped.record));
      assert.equal(usageRecordForm(mapped.record), encodedRecord(usageRecordXmlBuilt(mapped.record)));
      compared++;
    }
    assert.ok(compared > 2000, `compared ${compared} simulated records`);
  });

  it('are byte-identical with awkward, empty and placeholder-like values in every field', () => {
    for (const value of AWKWARD) {
      const variants: UsageRecord[] = [
        { ...RECORD, recordId: value, localJobId: value, dn: value, localUserId: value, voName: value, reportableVoName: value, submitHost: value, action: value, probeName: value, siteName: value, grid: value },
        { ...RECORD, resources: [{ description: value, value }, { description: 'Protocol', value }], status: value as unknown as number },
        { ...RECORD, dn: undefined, localUserId: value, resources: [] },
        { ...RECORD, voName: value, reportableVoName: undefined, submitHost: undefined, njobs: 3 },
      ];
      for (const record of variants) assert.equal(usageRecordXml(record), usageRecordXmlBuilt(record), JSON.stringify(value));
    }
  });

  it('form-encode the record line as encoding the built XML does, for awkward values in every field', () => {
    // Each value in turn, then all together, twice (the second time the values repeat: the
    // encoder reuses what it made for the same value in the same place).
    const values = [...AWKWARD, '<&>"', 'Zoë Ünïcode ß € \u00A0 \u07FF \u0800 \uFFFD', '🚀 𝄞 \u{10FFFF}', '\uDC00', 'a\uD83Db', '\uDE00\uD83D', "!'()~*-._ +%=&", '%20%2B%7E%', '\u00010\u0001'];
    for (let round = 0; round < 2; round++) {
      for (const value of values) {
        const variants: UsageRecord[] = [
          { ...RECORD, dn: value },
          { ...RECORD, recordId: value, localJobId: value, dn: value, localUserId: value, voName: value, reportableVoName: value, submitHost: value, action: value, probeName: value, siteName: value, grid: value },
          { ...RECORD, resources: [{ description: value, value }, { description: 'Protocol', value }], status: value as unknown as number },
          { ...RECORD, dn: undefined, localUserId: value, resources: [], njobs: 2 },
        ];
        for (const record of variants) {
          const xml = usageRecordXmlBuilt(record);
          assert.equal(usageRecordForm(record), encodedRecord(xml), JSON.stringify(value));
          assert.equal(usageRecordXml(record), xml, JSON.stringify(value));
        }
      }
    }
  });
});

describe('the multiupdate bundle', () => {
  it('decodes to the same fields with a standard form decoder as with the GRACC-strict one', () => {
    const xml = usageRecordXml({ ...RECORD, dn: "/CN=ä ö & + = % ' ( ) * ! ~ 🚀", localUserId: 'a b\tc\nd' });
    const body = multiupdateForm([xml], 'dcache-transfer:probe.example.org');
    const standard = new URLSearchParams(body);
    const strict = parseForm(body);
    for (const key of ['command', 'arg1', 'from', 'bundlesize']) assert.equal(strict.get(key), standard.get(key), key);
    assert.ok(standard.get('arg1')!.includes("/CN=ä ö &amp; + = % &apos; ( ) * ! ~ 🚀"));
    assert.ok(!body.includes(' '), 'no raw spaces in the body');
  });

  it('wraps records in a RecordEnvelope after one UTF-8 declaration, one record a line', () => {
    const a = usageRecordXml(RECORD);
    const b = usageRecordXml({ ...RECORD, localJobId: 'second' });
    assert.equal(recordEnvelope([a, b]), `<?xml version="1.0" encoding="UTF-8"?>\n<RecordEnvelope>\n${a}\n${b}\n</RecordEnvelope>`);
  });

  it('is a form with command=multiupdate, arg1 and from, that a GRACC-strict parser accepts', () => {
    const form = parseForm(multiupdateForm([usageRecordXml(RECORD), usageRecordXml({ ...RECORD, localUserId: 'Zoë' })], 'dcache-transfer:probe.example.org'));
    assert.equal(form.get('command'), 'multiupdate');
    assert.equal(form.get('from'), 'dcache-transfer:probe.example.org');
    assert.equal(form.get('bundlesize'), '2');
    const records = parseEnvelope(form.get('arg1')!);
    assert.deepEqual(records.map((r) => r.localJobId), ['pool:p1@d:1-1', 'pool:p1@d:1-1']);
    assert.ok(records[1]!.xml.includes('<LocalUserId>Zoë</LocalUserId>'));
  });
});

/** The bodies as URLSearchParams wrote them before the sender encoded records one by one. */
function referenceForm(recordsXml: readonly string[], probeName: string, backlog = 0, bundleSize = recordsXml.length): string {
  return new URLSearchParams({
    command: 'multiupdate',
    arg1: recordEnvelope(recordsXml),
    from: probeName,
    xmlfiles: String(backlog),
    tarfiles: '0',
    maxpendingfiles: '0',
    backlog: String(backlog),
    bundlesize: String(bundleSize),
  }).toString();
}

/** The earlier planBodies: build the whole form, then each half, and so on. */
function referencePlan(records: readonly string[], probeName: string, maxBytes: number, backlog: number): { start: number; end: number; form: string }[] {
  const out: { start: number; end: number; form: string }[] = [];
  const plan = (start: number, end: number): void => {
    if (start >= end) return;
    const form = referenceForm(records.slice(start, end), probeName, backlog);
    if (Buffer.byteLength(form) <= maxBytes || end - start === 1) {
      out.push({ start, end, form });
      return;
    }
    const mid = start + Math.ceil((end - start) / 2);
    plan(start, mid);
    plan(mid, end);
  };
  plan(0, records.length);
  return out;
}

let printableAscii = '';
for (let c = 0x20; c <= 0x7e; c++) printableAscii += String.fromCharCode(c);
let allAscii = '';
for (let c = 0; c <= 0x7f; c++) allAscii += String.fromCharCode(c);

/** Values with every character that form encoding treats differently from the plain ones. */
const AWKWARD = [
  printableAscii,
  allAscii,
  `<&>"'`,
  "!'()~*-._ +%=&",
  'a b\tc\nd\r\ne',
  'Zoë Ünïcode ß € \u00A0 \u07FF \u0800 \uFFFD \uFFFF',
  '🚀 𝄞 \u{10FFFF} \u{10000}',
  '%20%2B%7E%', // already looks encoded
  '',
];
/** Strings that are not well-formed UTF-16: URLSearchParams writes U+FFFD for a lone surrogate. */
const LONE_SURROGATES = ['\uD800', '\uDC00', 'a\uD83Db', 'a\uDE00b', '\uDE00\uD83D', '\uD83D\uD83D\uDE00', 'x\uD83D'];

describe('form encoding, byte-identical to URLSearchParams', () => {
  it('encodes every character as URLSearchParams does', () => {
    for (const value of [...AWKWARD, ...LONE_SURROGATES]) {
      assert.equal(formEncode(value), new URLSearchParams({ v: value }).toString().slice('v='.length), JSON.stringify(value));
    }
    for (let c = 0; c <= 0xffff; c++) {
      const value = String.fromCharCode(c);
      assert.equal(formEncode(value), new URLSearchParams({ v: value }).toString().slice('v='.length), `U+${c.toString(16)}`);
    }
  });

  it('gives the same multiupdate body for records with awkward characters', () => {
    const records = AWKWARD.flatMap((value) => [
      usageRecordXml({ ...RECORD, dn: value, localUserId: value, localJobId: `job ${value}` }),
      usageRecordXml({ ...RECORD, resources: [{ description: value, value }], submitHost: value }),
    ]);
    const names = ['dcache-transfer:probe.example.org', `probe ${printableAscii}`, 'zoë 🚀 (test)'];
    for (const name of names) {
      for (let n = 0; n <= records.length; n += 3) {
        const bundle = records.slice(0, n);
        assert.equal(multiupdateForm(bundle, name), referenceForm(bundle, name), `${n} records from ${name}`);
      }
      for (const [backlog, bundleSize] of [[0, 1], [12345, 500], [1e21, 7], [-1, 0.5]] as const) {
        assert.equal(multiupdateForm(records, name, { backlog, bundleSize }), referenceForm(records, name, backlog, bundleSize), `backlog ${backlog}, bundleSize ${bundleSize}`);
      }
    }
  });

  it('gives the same body for strings that are not records, lone surrogates included', () => {
    // multiupdateForm takes any strings; a record line always ends in '\n', so even a lone
    // surrogate at the edge of a record cannot pair with one in the next record.
    const strings = [...AWKWARD, ...LONE_SURROGATES, '\uD83D', '\uDE00'];
    assert.equal(multiupdateForm(strings, 'p\uD800'), referenceForm(strings, 'p\uD800'));
    assert.equal(multiupdateForm(['a\uD83D', '\uDE00b'], 'p'), referenceForm(['a\uD83D', '\uDE00b'], 'p'));
  });

  it('splits bundles exactly where the earlier planner did, with the same bodies', () => {
    let seed = 7;
    const random = () => ((seed = (seed * 1103515245 + 12345) % 2147483648) / 2147483648);
    const records = Array.from({ length: 37 }, (_, i) => {
      const value = AWKWARD[i % AWKWARD.length]!.repeat(1 + Math.floor(random() * 4));
      return usageRecordXml({ ...RECORD, localJobId: `pool:p1@d:${i}`, dn: value, submitHost: i % 5 ? undefined : value });
    });
    const name = 'dcache-transfer:probe.example.org';
    const whole = Buffer.byteLength(referenceForm(records, name, 3));
    const one = Buffer.byteLength(referenceForm(records.slice(0, 1), name, 3));
    // Limits around the sizes where the planner's decisions change, and the extremes.
    const limits = [0, 1, one - 1, one, one + 1, 10_000, 20_000, Math.floor(whole / 3), Math.floor(whole / 2), Math.ceil(whole / 2) + 1, whole - 1, whole, whole + 1, 1_800_000];
    for (const half of [records.slice(0, 19), records.slice(19)]) limits.push(Buffer.byteLength(referenceForm(half, name, 3)) - 1, Buffer.byteLength(referenceForm(half, name, 3)));
    let splits = 0;
    for (const maxBytes of limits) {
      for (const bundle of [records, records.slice(0, 9), records.slice(0, 1), []]) {
        const planned = planBodies(bundle, name, maxBytes, 3);
        assert.deepEqual(planned, referencePlan(bundle, name, maxBytes, 3), `${bundle.length} records, maxBytes ${maxBytes}`);
        const bytes = planEncodedBodies(bundle.map(encodedRecord), name, maxBytes, 3);
        assert.deepEqual(bytes.map((b) => ({ ...b, form: b.form.toString('latin1') })), planned);
        assert.deepEqual(bytes.map((b) => b.form.toString('utf8')), planned.map((b) => b.form), 'the bytes are ASCII');
        if (planned.length > 1) splits++;
      }
    }
    assert.ok(splits >= 10, 'the limits make the planner split');
  });
});
