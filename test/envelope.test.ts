/**
 * The test collector reads an envelope in one of two ways (src/tools/collector/envelope.ts): plainly,
 * in one pass, when it can tell the answer, and otherwise strictly (the validator, then the
 * parser over each record). The answer must never depend on which: these tests compare
 * parseEnvelope with the strict reading alone, on the probe's envelopes, on hand-made unusual
 * and broken ones, and on thousands of randomly damaged ones.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { BadRequest, XML_ERROR, parseEnvelope, readPlain } from '../src/tools/collector/envelope';
import { rng } from '../src/tools/demo/simulator';
import { recordEnvelope } from '../src/record/envelope';
import { probeDetailsXml, usageRecordXml } from '../src/record/xml';
import { SAMPLE_RECORD } from './helpers/records';

const RECORD = SAMPLE_RECORD;

const PROBE_RECORDS = [
  usageRecordXml(RECORD),
  usageRecordXml({ ...RECORD, localJobId: 'pool:p2@d:2-2', dn: "/CN=a <&> \"b\" 'c' Zoë 🚀", submitHost: undefined }),
  usageRecordXml({ ...RECORD, localJobId: 'pool:p3@d:3-3', recordId: 'r&"<>\'', voName: undefined, reportableVoName: undefined }),
];

/** What the collector answers: the records, or the text of its 400. */
function answer(read: () => unknown): unknown {
  try {
    return { records: read() };
  } catch (err) {
    return { refused: err instanceof BadRequest ? err.message : XML_ERROR };
  }
}

function assertSameAnswer(envelope: string): void {
  assert.deepEqual(answer(() => parseEnvelope(envelope)), answer(() => parseEnvelope(envelope, { plain: false })), JSON.stringify(envelope));
}

describe("the collector's envelope reading", () => {
  it("reads the probe's envelopes in one pass, with the records the strict reading finds", () => {
    const handshake = recordEnvelope([probeDetailsXml({ probeName: RECORD.probeName, siteName: 'S', grid: 'OSG', createTimeMs: RECORD.createTimeMs, software: [{ name: 'dcache-transfer-probe', version: '1', type: 'component' }] })]);
    for (const envelope of [recordEnvelope(PROBE_RECORDS), recordEnvelope(PROBE_RECORDS.slice(0, 1)), recordEnvelope([]), handshake]) {
      const plain = readPlain(envelope);
      assert.ok(plain, `the plain reading declined ${envelope.slice(0, 200)}`);
      assert.deepEqual(plain, parseEnvelope(envelope, { plain: false }));
    }
    assert.deepEqual(readPlain(recordEnvelope(PROBE_RECORDS))!.map((r) => r.localJobId), ['pool:p1@d:1-1', 'pool:p2@d:2-2', 'pool:p3@d:3-3']);
  });

  it('leaves a LocalJobId with entities to the strict reading, which decodes it', () => {
    const envelope = recordEnvelope([usageRecordXml({ ...RECORD, localJobId: 'id with & and <' })]);
    assert.equal(readPlain(envelope), null);
    assert.deepEqual(parseEnvelope(envelope).map((r) => r.localJobId), ['id with & and <']);
  });

  it('answers unusual and broken envelopes exactly as the strict reading does', () => {
    const [a] = PROBE_RECORDS as [string];
    const wrap = (...records: string[]) => `<?xml version="1.0" encoding="UTF-8"?>\n<RecordEnvelope>\n${records.join('\n')}\n</RecordEnvelope>`;
    const edit = (from: string | RegExp, to: string) => wrap(a.replace(from, to));
    const cases = [
      wrap(a),
      edit('<StartTime>2024-03-14T18:31:48.589Z', '<StartTime>yesterday'),
      edit('<StartTime>2024-03-14T18:31:48.589Z', '<StartTime> 2024-03-14T18:31:48.589Z\n'),
      edit('<StartTime>', '<StartTime urwg:x="1">'),
      edit('<StartTime>2024-03-14T18:31:48.589Z</StartTime>', '<StartTime/>'),
      edit('<EndTime>', '<EndTime>2024-03-14T18:31:48.589Z</EndTime><EndTime>'),
      edit('<StartTime>2024-03-14T18:31:48.589Z', '<StartTime><![CDATA[2024-03-14T18:31:48.589Z]]>'),
      edit('urwg:createTime="2024-03-14T18:32:00Z"', 'urwg:createTime="2024-03-14 18:32"'),
      edit('urwg:createTime="2024-03-14T18:32:00Z"', 'createTime="2024-03-14T18:32:00Z" urwg:createTime="nope"'),
      edit('urwg:createTime="2024-03-14T18:32:00Z"', 'xmlns:createTime="nope"'),
      edit('urwg:createTime="2024-03-14T18:32:00Z"', "urwg:createTime='2024-03-14T18:32:00Z'"),
      edit('urwg:createTime="2024-03-14T18:32:00Z"', 'urwg:createTime="2024-03-14T18:32:00Z" urwg:createTime="2024-03-14T18:32:00Z"'),
      edit('<JobIdentity>', '<RecordIdentity urwg:createTime="bad"/><JobIdentity>'),
      edit('<LocalJobId>pool:p1@d:1-1', '<LocalJobId>  pool:p1@d:1-1 '),
      edit('<LocalJobId>pool:p1@d:1-1', '<LocalJobId>pool:p1@d:1-1&amp;&#65;&unknown;'),
      edit('<LocalJobId>pool:p1@d:1-1', '<LocalJobId>a\r\nb'),
      edit('<LocalJobId>pool:p1@d:1-1</LocalJobId>', '<LocalJobId/>'),
      edit('<LocalJobId>pool:p1@d:1-1</LocalJobId>', '<LocalJobId>x</LocalJobId><LocalJobId>y</LocalJobId>'),
      edit('<JobIdentity>', '<JobIdentity><!-- a comment -->'),
      edit('</JobIdentity>', '</JobIdentity><JobIdentity><LocalJobId>second</LocalJobId></JobIdentity>'),
      edit(/<JobIdentity>.*?<\/JobIdentity>/, '<JobIdentity>text only</JobIdentity>'),
      edit('<Status>', '<__proto__/><Status>'),
      edit('<Status>', '<constructor>x</constructor><Status>'),
      edit('<Status>0', '<Status>&bogus'),
      edit('<Status>0', '<Status>&#;'),
      edit('<Status>', '<?pi x?><Status>'),
      edit('</JobUsageRecord>', '<JobUsageRecord><Njobs>1</Njobs></JobUsageRecord></JobUsageRecord>'),
      edit('</Status>', '</status>'),
      edit('</Status>', '</Status >'),
      edit('<Status>', '<Status a="1" a="2">'),
      edit('<Status>', '<Status a="1"b="2">'),
      edit('<Status>', '<Status a=1>'),
      edit('<Status>', '<Status a="<">'),
      edit('<Status>', '<1Status>'),
      edit('<Status>', '<urwg:Status>'),
      wrap(a, a),
      wrap('<JobUsageRecord/>', a),
      wrap('<JobUsageRecord></JobUsageRecord>'),
      wrap('<JobUsageRecord>   </JobUsageRecord>'),
      wrap('<JobUsageRecord>text</JobUsageRecord>'),
      wrap('<JobUsageRecord xmlns="x"/>'),
      wrap('<JobUsageRecord-x><Status>0</Status></JobUsageRecord-x>'),
      wrap('<ProbeDetails>' + a + '</ProbeDetails>'),
      `<?xml version="1.0" encoding="UTF-8"?>\n${a}`,
      `${a}\n${a}`,
      `<RecordEnvelope>${a}</RecordEnvelope>`,
      `\uFEFF<RecordEnvelope>${a}</RecordEnvelope>`,
      `  <?xml version="1.0" encoding="UTF-8"?><RecordEnvelope>${a}</RecordEnvelope>`,
      `<?xml version="1.0"?><RecordEnvelope>${a}</RecordEnvelope>`,
      `<?xml version="1.0" encoding="ISO-8859-1"?><RecordEnvelope>${a}</RecordEnvelope>`,
      `<RecordEnvelope/><RecordEnvelope>${a}</RecordEnvelope>`,
      `<RecordEnvelope>${a}</RecordEnvelope>trailing`,
      `<RecordEnvelope>${a}</RecordEnvelope><!-- trailing -->`,
      `<RecordEnvelope>${a}`,
      `<RecordEnvelope>${a}</RecordEnvelope></RecordEnvelope>`,
      `<!DOCTYPE x><RecordEnvelope>${a}</RecordEnvelope>`,
      `<RecordEnvelope>\u0001${a}</RecordEnvelope>`,
      '',
      'not xml',
      '<a>' + '<b>'.repeat(120) + '</b>'.repeat(120) + '</a>',
      wrap(a.replace('<Status>', '<X>'.repeat(120) + '</X>'.repeat(120) + '<Status>')),
    ];
    for (const envelope of cases) assertSameAnswer(envelope);
  });

  it('answers randomly damaged envelopes exactly as the strict reading does', () => {
    const random = rng(7);
    const pick = <T>(list: readonly T[]): T => list[Math.floor(random() * list.length)]!;
    const pieces = ['<', '>', '/', '&', ';', '"', "'", '=', ' ', '\n', '\r', '!', '?', '[', ']', '-', ':', 'a', 'Z', '0', 'T', '&amp;', '&#65;', '<!--', '-->', '<![CDATA[', ']]>', '/>', '</', 'urwg:', 'xmlns:', ' createTime="2024-03-14T18:32:00Z"', '<StartTime>', '</StartTime>', '<LocalJobId>', '</LocalJobId>', '<JobUsageRecord>', '</JobUsageRecord>', '<RecordIdentity/>', '<JobIdentity>', '</JobIdentity>'];
    const source = recordEnvelope(PROBE_RECORDS);
    let plainAnswers = 0;
    const runs = 3000;
    for (let run = 0; run < runs; run++) {
      let envelope = source;
      for (let edits = 1 + Math.floor(random() * 3); edits > 0; edits--) {
        // Mostly where markup is: at or next to a '<', '>', '"' or '&'.
        let at = Math.floor(random() * envelope.length);
        if (random() < 0.7) {
          const marks = [...envelope.matchAll(/[<>"&]/g)].map((m) => m.index!);
          at = pick(marks) + (random() < 0.5 ? 0 : 1);
        }
        const kind = random();
        if (kind < 0.35) envelope = envelope.slice(0, at) + pick(pieces) + envelope.slice(at);
        else if (kind < 0.65) envelope = envelope.slice(0, at) + envelope.slice(at + 1 + Math.floor(random() * 3));
        else if (kind < 0.85) envelope = envelope.slice(0, at) + pick(pieces) + envelope.slice(at + 1);
        else {
          const from = Math.floor(random() * envelope.length);
          envelope = envelope.slice(0, at) + envelope.slice(from, from + Math.floor(random() * 60)) + envelope.slice(at);
        }
      }
      assertSameAnswer(envelope);
      if (readPlain(envelope) !== null) plainAnswers++;
    }
    // Both readings must have been exercised: the plain one answers for many damaged envelopes
    // (a damaged text or attribute value), and declines for many more.
    assert.ok(plainAnswers > runs / 10 && plainAnswers < runs / 2, `the plain reading answered ${plainAnswers} of ${runs}`);
  });
});
