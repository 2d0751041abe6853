/**
 * Reading a multiupdate envelope (the arg1 of a multiupdate request) as GRACC would: the checks
 * that decide between "OK" and "error unmarshalling xml", and the records it holds.
 *
 * There are two readers, and both give the same answer for every envelope:
 *
 *  - the strict reading (`readStrictly`): fast-xml-parser's validator over the whole envelope,
 *    then its parser over each record for LocalJobId and the times. It is the definition of
 *    what the collector accepts, and every refusal comes from it.
 *  - the plain reading (`readPlain`): one pass over the envelope that only understands the
 *    plain XML probes write (no comments, CDATA, processing instructions or DOCTYPE; ASCII
 *    names; double-quoted attributes; only the five predefined entities). It answers only when
 *    it can tell that the strict reading would accept the envelope and return the same
 *    records; for anything else (anything unusual, anything malformed, any bad time) it
 *    declines, and the envelope is read strictly.
 *
 * The plain reading exists because the strict one is slow: the validator, then a second, full
 * parse of every record into objects of which three values are used, take ≈ 40 ms per bundle of
 * 500 records, most of the collector's CPU, which made the collector, not the probe, the limit
 * of the benchmarks (docs/PERFORMANCE.md). The plain reading takes ≈ 4 ms. Why its shape is a
 * safe subset is written next to its rules below; test/envelope.test.ts compares the two
 * readings on the probe's envelopes, on unusual and broken ones, and on thousands of damaged ones.
 */
import { XMLParser, XMLValidator } from 'fast-xml-parser';

export const XML_ERROR = 'Error handling request: error unmarshalling xml';

export class BadRequest extends Error {}

export interface EnvelopeRecord {
  localJobId: string;
  /** The record's XML, exactly as it appears in the envelope. */
  xml: string;
}

const RFC3339 = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$/;
// XML 1.0 forbids these (GRACC's Go decoder refuses them).
const FORBIDDEN = /[\u0000-\u0008\u000B\u000C\u000E-\u001F\uFFFE\uFFFF]/;

const parser = new XMLParser({ ignoreAttributes: false, attributeNamePrefix: '@', removeNSPrefix: true, parseTagValue: false, isArray: (name) => name === 'Resource' });

/**
 * Validates a multiupdate envelope as GRACC would; returns the records' XML. `plain: false`
 * skips the plain reading (for the tests that compare the two).
 */
export function parseEnvelope(arg1: string, { plain = true }: { plain?: boolean } = {}): EnvelopeRecord[] {
  const decl = arg1.match(/^\s*<\?xml([^?]*)\?>/);
  if (decl && !/encoding\s*=\s*["']utf-8["']/i.test(decl[1]!) && /encoding/.test(decl[1]!)) throw new BadRequest(XML_ERROR);
  if (/<!DOCTYPE/i.test(arg1) || FORBIDDEN.test(arg1)) throw new BadRequest(XML_ERROR);
  return (plain ? readPlainOrDecline(arg1) : null) ?? readStrictly(arg1);
}

/** The plain reading, declining also when it fails itself (say, a regex out of stack on an absurd tag). */
function readPlainOrDecline(arg1: string): EnvelopeRecord[] | null {
  try {
    return readPlain(arg1);
  } catch {
    return null;
  }
}

/**
 * The strict reading, after the checks of parseEnvelope: the validator's verdict on the whole
 * envelope, then each record (every `<JobUsageRecord …</JobUsageRecord>` in the text) parsed for
 * LocalJobId and checked for RFC 3339 times.
 */
function readStrictly(arg1: string): EnvelopeRecord[] {
  if (XMLValidator.validate(arg1) !== true) throw new BadRequest(XML_ERROR);
  const records = arg1.match(/<JobUsageRecord\b[\s\S]*?<\/JobUsageRecord>/g) ?? [];
  return records.map((xml) => {
    const doc = parser.parse(xml) as { JobUsageRecord?: Record<string, unknown> };
    const jur = doc.JobUsageRecord;
    if (!jur) throw new BadRequest(XML_ERROR);
    const identity = jur.RecordIdentity as Record<string, string> | undefined;
    for (const time of [jur.StartTime, jur.EndTime, identity?.['@createTime']]) {
      if (time !== undefined && !RFC3339.test(String(time))) throw new BadRequest(XML_ERROR);
    }
    const localJobId = String((jur.JobIdentity as Record<string, unknown> | undefined)?.LocalJobId ?? '');
    return { localJobId, xml };
  });
}

// ---------------------------------------------------------------------------------------------
// The plain reading.
//
// Why its shape is accepted by the validator (node_modules/fast-xml-parser/src/validator.js):
// element and attribute names are ASCII names, which its isName() accepts; every start tag is
// `<name` then attributes each after whitespace as name="value" (no '"' in the value, so its
// quote tracking and attribute scan see exactly these attributes), no name twice (it refuses
// repeats); end tags are `</name>` and close the innermost open element; text has no '<' and
// uses '&' only in the five predefined entities (it accepts any `&word;`); there is one root
// element, with only whitespace around it, after the probe's own XML declaration or none.
//
// Why the records and their fields are those the strict reading finds: a record is an element
// named exactly JobUsageRecord, a child of the root, not self-closing, and no other element's
// name starts with "JobUsageRecord", so the strict reading's regex finds exactly these spans
// (no '<' can hide in text or attribute values); the field values are read as its parser
// builds them (removeNSPrefix, trimmed values, "@createTime" from any prefix but xmlns) in the
// only cases where that is simple: one element with text only, without '&' or '\r' (entities
// and line ends the parser would rewrite). A record without child elements (the parser's value
// would not be an object) or with a time that is not RFC 3339 makes it decline: refusals are
// the strict reading's. Names the parser refuses (__proto__, …) and nesting near its limit
// (100) make it decline too, like every other doubt. The checks before both readings (the
// declaration's encoding, DOCTYPE, characters XML forbids) are shared.
// ---------------------------------------------------------------------------------------------

/** The declaration recordEnvelope() writes (src/record/xml.ts). */
const DECLARATION = '<?xml version="1.0" encoding="UTF-8"?>';
/** ASCII names without a namespace prefix: element names, where removeNSPrefix changes nothing. */
const NAME = '[A-Za-z_][A-Za-z0-9_.-]*';
/** Attribute names, with at most one prefix (urwg:createTime). */
const ATTRIBUTE_NAME = `${NAME}(?::${NAME})?`;
const START_TAG = new RegExp(`<(${NAME})((?:[ \\t\\r\\n]+${ATTRIBUTE_NAME}="[^"<]*")*)[ \\t\\r\\n]*(/?)>`, 'y');
const ATTRIBUTE = new RegExp(`(${ATTRIBUTE_NAME})="([^"<]*)"`, 'g');
const SPACE = /[ \t\r\n]*/y;
/** An '&' that does not start one of the five predefined entities. */
const OTHER_REFERENCE = /&(?!(?:amp|lt|gt|quot|apos);)/;
/** Names fast-xml-parser's parser refuses (prototype pollution). */
const parserRefuses = (name: string) => name === '__proto__' || name === 'constructor' || name === 'prototype';
const MAX_DEPTH = 50;

interface Open {
  name: string;
  /** Where its content starts (after the start tag's '>'). */
  contentStart: number;
  hasAttributes: boolean;
  hasChildren: boolean;
}

/** What the strict reading looks at in the record being read (a field is undefined until seen). */
interface RecordFields {
  /** Where its start tag begins. */
  start: number;
  startTime?: string;
  endTime?: string;
  createTime?: string;
  localJobId?: string;
  recordIdentities: number;
  jobIdentities: number;
}

/** The depth of a record (the stack's length while it is open): the root is 1, its children 2. */
const RECORD_DEPTH = 2;

/**
 * The plain reading: the records, or null when it cannot tell what the strict reading would
 * say (then the caller reads strictly). It never refuses anything itself.
 */
export function readPlain(xml: string): EnvelopeRecord[] | null {
  const records: EnvelopeRecord[] = [];
  const stack: Open[] = [];
  let record: RecordFields | null = null;
  let rootClosed = false;
  let i = xml.startsWith(DECLARATION) ? DECLARATION.length : 0;
  let amp = xml.indexOf('&', i);

  for (;;) {
    // Text up to the next tag: outside the root only whitespace, inside it plain text.
    const lt = xml.indexOf('<', i);
    const textEnd = lt < 0 ? xml.length : lt;
    if (stack.length === 0) {
      SPACE.lastIndex = i;
      SPACE.test(xml);
      if (SPACE.lastIndex !== textEnd) return null;
    } else {
      // (The next '&' is remembered: searching from every text would rescan the document.)
      if (amp >= 0 && amp < i) amp = xml.indexOf('&', i);
      if (amp >= 0 && amp < textEnd && OTHER_REFERENCE.test(xml.slice(amp, textEnd))) return null;
    }
    if (lt < 0) break;
    if (rootClosed) return null; // a second root, or anything else after the first

    i = lt;
    if (xml.charCodeAt(i + 1) === 0x2f /* '/' */) {
      // An end tag: exactly `</name>` of the innermost open element.
      const open = stack.pop();
      if (!open || !xml.startsWith(open.name, i + 2) || xml.charCodeAt(i + 2 + open.name.length) !== 0x3e /* '>' */) return null;
      const endTagEnd = i + 3 + open.name.length;
      if (record) {
        const depth = stack.length + 1; // of the element being closed
        if (depth === RECORD_DEPTH) {
          const done = finishRecord(record, xml.slice(record.start, endTagEnd));
          if (!done || !open.hasChildren) return null;
          records.push(done);
          record = null;
        } else if (!takeField(record, stack, open, xml, i)) {
          return null;
        }
      }
      if (stack.length === 0) rootClosed = true;
      i = endTagEnd;
      continue;
    }

    // A start tag (or a self-closing one); anything else after '<' (<!--, <![CDATA[, <?) declines.
    START_TAG.lastIndex = i;
    const tag = START_TAG.exec(xml);
    if (!tag) return null;
    const [, name, attributes, selfClosing] = tag as unknown as [string, string, string, string];
    if (parserRefuses(name) || stack.length >= MAX_DEPTH) return null;
    // A self-closing root does not count as closing the root for the validator (it would take
    // a second element after it): decline.
    if (stack.length === 0 && selfClosing) return null;
    const parent = stack[stack.length - 1];
    if (parent) parent.hasChildren = true;
    const depth = stack.length + 1;

    if (name.startsWith('JobUsageRecord')) {
      // Only records where the strict reading's regex finds them: children of the root.
      if (name !== 'JobUsageRecord' || depth !== RECORD_DEPTH || selfClosing) return null;
      record = { start: i, recordIdentities: 0, jobIdentities: 0 };
    }
    if (attributes && !plainAttributes(attributes, record && depth === RECORD_DEPTH + 1 && name === 'RecordIdentity' ? record : null)) return null;
    const open: Open = { name, contentStart: START_TAG.lastIndex, hasAttributes: attributes !== '', hasChildren: false };
    if (selfClosing) {
      if (record && !takeField(record, stack, open, xml, open.contentStart)) return null;
    } else {
      stack.push(open);
    }
    i = START_TAG.lastIndex;
  }
  return rootClosed ? records : null;
}

/**
 * Checks a start tag's attributes (no name twice, plain references) and, on a record's
 * RecordIdentity, takes createTime as the parser would name it.
 */
function plainAttributes(attributes: string, identity: RecordFields | null): boolean {
  const names: string[] = [];
  ATTRIBUTE.lastIndex = 0;
  for (let m = ATTRIBUTE.exec(attributes); m; m = ATTRIBUTE.exec(attributes)) {
    const name = m[1]!;
    const value = m[2]!;
    if (names.includes(name)) return false;
    names.push(name);
    if (OTHER_REFERENCE.test(value)) return false;
    if (identity) {
      // removeNSPrefix: "urwg:createTime" is "@createTime"; xmlns and xmlns:* are dropped.
      const colon = name.indexOf(':');
      const local = colon < 0 ? name : name.slice(0, colon) === 'xmlns' ? '' : name.slice(colon + 1);
      if (local === 'createTime') {
        if (identity.createTime !== undefined || value.includes('&') || value.includes('\r')) return false;
        identity.createTime = value.trim();
      }
    }
  }
  return true;
}

/**
 * Notes an element of a record as it closes (`stack` no longer holds it; its content ends at
 * `contentEnd`). False = decline.
 */
function takeField(record: RecordFields, stack: readonly Open[], element: Open, xml: string, contentEnd: number): boolean {
  const depth = stack.length + 1;
  let field: 'startTime' | 'endTime' | 'localJobId' | undefined;
  if (depth === RECORD_DEPTH + 1) {
    if (element.name === 'StartTime') field = 'startTime';
    else if (element.name === 'EndTime') field = 'endTime';
    // Twice, the parser would make an array, whose @createTime / LocalJobId it never reads.
    else if (element.name === 'RecordIdentity') return ++record.recordIdentities === 1;
    else if (element.name === 'JobIdentity') return ++record.jobIdentities === 1;
  } else if (depth === RECORD_DEPTH + 2 && element.name === 'LocalJobId' && stack[stack.length - 1]!.name === 'JobIdentity') {
    field = 'localJobId';
  }
  if (field === undefined) return true;
  // The parser's value is simple only for one element (twice: an array) with text only (with
  // attributes or child elements: an object) without '&' or '\r' (it rewrites entities and line
  // ends); then it is the text, trimmed.
  if (record[field] !== undefined || element.hasAttributes || element.hasChildren) return false;
  const text = xml.slice(element.contentStart, contentEnd);
  if (text.includes('&') || text.includes('\r')) return false;
  record[field] = text.trim();
  return true;
}

/** The record, if the strict reading would accept its times; null (decline) otherwise. */
function finishRecord(record: RecordFields, xml: string): EnvelopeRecord | null {
  for (const time of [record.startTime, record.endTime, record.createTime]) {
    if (time !== undefined && !RFC3339.test(time)) return null;
  }
  return { localJobId: record.localJobId ?? '', xml };
}
