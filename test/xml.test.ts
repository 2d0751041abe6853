import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { XMLBuilder, XMLParser, XMLValidator } from 'fast-xml-parser';
import type { UsageRecord } from '../src/mapping';
import { multiupdateForm } from '../src/sender';
import { recordEnvelope, usageRecordXml, xmlSafe, xmlText } from '../src/xml';
import { parseEnvelope, parseForm } from '../src/collector/server';

const RECORD: UsageRecord = {
  recordId: 'dcache-transfer:probe.example.org:pool:p1@d:1-1',
  createTimeMs: Date.parse('2024-03-14T18:32:00.750Z'),
  localJobId: 'pool:p1@d:1-1',
  dn: '/DC=org/CN=Jane Doe',
  localUserId: '/DC=org/CN=Jane Doe',
  voName: 'cms',
  reportableVoName: 'cms',
  resources: [
    { description: 'Source', value: 'p1@d@dcache.example.org' },
    { description: 'Destination', value: '192.0.2.1' },
    { description: 'Protocol', value: 'GFtp-2.0' },
    { description: 'IsNew', value: '0' },
  ],
  startTimeMs: Date.parse('2024-03-14T18:31:48.589Z'),
  endTimeMs: Date.parse('2024-03-14T18:31:57.123Z'),
  networkBytes: 964544,
  durationMs: 8534,
  action: 'transfer',
  submitHost: 'client.example.edu',
  status: 0,
  probeName: 'dcache-transfer:probe.example.org',
  siteName: 'EXAMPLE_SE',
  grid: 'OSG',
};

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
