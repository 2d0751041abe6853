/**
 * Gratia XML: a UsageRecord -> one JobUsageRecord element (no XML declaration), or straight to
 * its form-encoded line of the multiupdate body (one pass, no XML made), and the ProbeDetails
 * handshake; the RecordEnvelope around records is src/record/envelope.ts. Built
 * with fast-xml-parser's builder, which escapes & < > " ' in text and attributes; characters
 * XML 1.0 forbids are removed first, so the output always parses (one bad character used to
 * stop the old probe for good).
 */
import { XMLBuilder } from 'fast-xml-parser';
import { encodedRecord, envelopeLine, formEncode } from './envelope';
import type { UsageRecord } from './mapping';
import { isoDuration, rfc3339, rfc3339Seconds } from './time';
import { EncodeError } from './types';

const UR_NAMESPACE = 'http://www.gridforum.org/2003/ur-wg';

const ROOT_ATTRIBUTES = {
  xmlns: UR_NAMESPACE,
  'xmlns:urwg': UR_NAMESPACE,
  'xmlns:xsi': 'http://www.w3.org/2001/XMLSchema-instance',
  'xsi:schemaLocation': `${UR_NAMESPACE} file:///u:/OSG/urwg-schema.11.xsd`,
};

// C0 controls other than tab, LF and CR; lone surrogates (not valid UTF-8); U+FFFE, U+FFFF.
const XML_FORBIDDEN = /[\u0000-\u0008\u000B\u000C\u000E-\u001F\uFFFE\uFFFF]|[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/g;

/** Removes the characters XML 1.0 cannot carry. */
export function xmlSafe(value: string): string {
  return value.replace(XML_FORBIDDEN, '');
}

const ENTITIES: Record<string, string> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&apos;' };
const FORBIDDEN_OR_MARKUP = new RegExp(`${XML_FORBIDDEN.source}|[&<>"']`, 'g');

/**
 * Text or attribute value, ready for the document: forbidden characters removed and markup
 * escaped in one pass, with exactly the entities fast-xml-parser's own processing writes
 * (a test compares the two), so records stay byte-identical. Doing it here, with the builder's
 * entity processing off, takes a quarter off the cost of building a record.
 */
export function xmlText(value: string): string {
  return value.replace(FORBIDDEN_OR_MARKUP, (c) => ENTITIES[c] ?? '');
}

const builder = new XMLBuilder({
  preserveOrder: true,
  ignoreAttributes: false,
  attributeNamePrefix: '',
  suppressEmptyNode: true,
  format: false,
  processEntities: false, // values are escaped by xmlText()
});

type Node = Record<string, unknown>;

/**
 * Where a record's values go. Building a record's tree calls `text(value)` for every text and
 * attribute value (already escaped with xmlText), in document order, and puts what it returns
 * in the tree (a template puts placeholders there).
 */
type TextSink = (value: string) => string;

/** Writes each value into the tree itself: the reference way of building a record. */
const inline: TextSink = (value) => value;

/** Node builders for fast-xml-parser's preserveOrder tree; every value goes through xmlText and `text`. */
function nodes(text: TextSink) {
  const attributesOf = (attributes: Record<string, string>) =>
    Object.fromEntries(Object.entries(attributes).map(([k, v]) => [k, text(xmlText(v))]));
  const element = (name: string, value: string | number, attributes?: Record<string, string>): Node => {
    const node: Node = {};
    if (attributes) node[':@'] = attributesOf(attributes); // attributes first: document order
    node[name] = [{ '#text': text(xmlText(String(value))) }];
    return node;
  };
  const parent = (name: string, children: Node[], attributes?: Record<string, string>): Node => {
    const node: Node = {};
    if (attributes) node[':@'] = attributesOf(attributes);
    node[name] = children;
    return node;
  };
  const optional = (name: string, value: string | undefined): Node[] => (value === undefined || value === '' ? [] : [element(name, value)]);
  const resource = (description: string, value: string): Node => element('Resource', value, { 'urwg:description': description });
  return { element, parent, optional, resource };
}

function recordTree(record: UsageRecord, text: TextSink): Node[] {
  const { element, parent, optional, resource } = nodes(text);
  const duration = isoDuration(record.durationMs);
  return [
    {
      JobUsageRecord: [
        parent('RecordIdentity', [], { 'urwg:recordId': record.recordId, 'urwg:createTime': rfc3339Seconds(record.createTimeMs) }),
        parent('JobIdentity', [element('LocalJobId', record.localJobId)]),
        parent('UserIdentity', [
          ...optional('DN', record.dn),
          ...optional('LocalUserId', record.localUserId),
          ...optional('VOName', record.voName),
          ...optional('ReportableVOName', record.reportableVoName),
        ]),
        ...record.resources.map((r) => resource(r.description, r.value)),
        element('StartTime', rfc3339(record.startTimeMs)),
        element('EndTime', rfc3339(record.endTimeMs)),
        element('Network', Math.trunc(record.networkBytes), {
          'urwg:storageUnit': 'b',
          'urwg:phaseUnit': duration,
          'urwg:metric': 'total',
          'urwg:description': record.action,
        }),
        element('WallDuration', duration),
        ...optional('SubmitHost', record.submitHost),
        element('Status', record.status),
        element('ProbeName', record.probeName),
        element('SiteName', record.siteName),
        element('Grid', record.grid),
        element('Njobs', record.njobs ?? 1),
        resource('ResourceType', 'Storage'),
      ],
      ':@': ROOT_ATTRIBUTES,
    },
  ];
}

function checkNumbers(record: UsageRecord): void {
  if (!Number.isFinite(record.networkBytes) || !Number.isFinite(record.durationMs)) {
    throw new EncodeError('size or duration is not a number');
  }
}

/** The reference: the whole record through fast-xml-parser's builder (tests compare with it). */
export function usageRecordXmlBuilt(record: UsageRecord): string {
  checkNumbers(record);
  return builder.build(recordTree(record, inline)) as string;
}

/**
 * Templates of record shapes, built by fast-xml-parser's builder: the markup between the values,
 * and the same markup form-encoded for the multiupdate body. A shape is which optional elements
 * a record has, how many resources, and which of its values are empty (an empty value makes
 * `<X/>`, so it is part of the shape). A site's records come in a handful of shapes.
 */
interface Template {
  /** The markup: parts[0], a value, parts[1], … */
  parts: string[];
  /** The same, form-encoded; the last one ends with the record line's newline (envelopeLine). */
  formParts: string[];
  /** Which value (its place in the record's values, in document order) goes after parts[i]. */
  order: number[];
}
/** Keyed by shapeKey: a number for records without empty values, else a string. */
const templates = new Map<number | string, Template>();
const MAX_TEMPLATES = 1000;
// Values are escaped with xmlText, which removes every C0 control character but tab, LF and CR,
// and the builder writes none: so \u0001 can only come from a placeholder.
const PLACEHOLDER = /\u0001(\d+)\u0001/;

// A record's values, in document order (the order recordTree meets them), collected without
// building its tree: module-level arrays reused from record to record (encoding is synchronous),
// so a record allocates no arrays and no objects. Position i also remembers the last value seen
// there with its escaped and form-encoded forms: most fields repeat from record to record (names,
// constants, the VO, the hosts), and those are then neither escaped nor encoded again.
const raw: string[] = [];
let count = 0;
const lastRaw: string[] = [];
const lastXml: string[] = [];
const lastForm: (string | undefined)[] = [];

/** Nothing xmlText would change: no markup, no forbidden character, no surrogate (pairs too go the slow way). */
const XML_PLAIN = /^[^&<>"'\u0000-\u0008\u000B\u000C\u000E-\u001F\uD800-\uDFFF\uFFFE\uFFFF]*$/;

/** Which optional elements the record being collected has, a bit each. */
let present = 0;

function put(value: string): void {
  raw[count++] = value;
}

/** An optional element's value, if the record has the element (as recordTree's optional()). */
function optional(bit: number, value: string | undefined): void {
  if (value === undefined || value === '') return;
  present |= bit;
  put(value);
}

/**
 * Collects the record's values into `raw`, in the order recordTree meets them, and returns the
 * part of its shape key that the values' emptiness does not give: which optional elements it
 * has, and how many resources. (The first record of every shape checks the order against
 * recordTree's own.)
 */
function collect(record: UsageRecord): number {
  count = 0;
  present = 0;
  const duration = isoDuration(record.durationMs);
  put(record.recordId);
  put(rfc3339Seconds(record.createTimeMs));
  put(String(record.localJobId));
  optional(1, record.dn);
  optional(2, record.localUserId);
  optional(4, record.voName);
  optional(8, record.reportableVoName);
  for (const r of record.resources) {
    put(r.description);
    put(String(r.value));
  }
  put(rfc3339(record.startTimeMs));
  put(rfc3339(record.endTimeMs));
  put('b'); // the Network element's attributes, then its value
  put(duration);
  put('total');
  put(record.action);
  put(String(Math.trunc(record.networkBytes)));
  put(duration);
  optional(16, record.submitHost);
  put(String(record.status));
  put(String(record.probeName));
  put(String(record.siteName));
  put(String(record.grid));
  put(String(record.njobs ?? 1));
  put('ResourceType');
  put('Storage');
  return present + record.resources.length * 32;
}

/** The value at position i, escaped for the document (as xmlText does). */
function xmlValue(i: number): string {
  const value = raw[i]!;
  if (lastRaw[i] === value) return lastXml[i]!;
  const xml = XML_PLAIN.test(value) ? value : xmlText(value);
  lastRaw[i] = value;
  lastXml[i] = xml;
  lastForm[i] = undefined;
  return xml;
}

/** The value at position i, escaped and form-encoded (xmlValue(i) first). */
function formValue(i: number): string {
  return (lastForm[i] ??= formEncode(lastXml[i]!));
}

/** Escapes the collected values; the shape key: the numeric key, or with the empty values' places added. */
function shapeKey(key: number): number | string {
  let empty: string | undefined;
  for (let i = 0; i < count; i++) if (xmlValue(i) === '') empty = `${empty ?? key}:${i}`;
  return empty ?? key;
}

/**
 * The record's template: found by its shape, or made with fast-xml-parser's builder from the
 * record's tree with placeholders for its values. Null if the tree does not hold exactly the
 * collected values in that order (never expected: then the record is built whole).
 */
function templateFor(record: UsageRecord, key: number | string): Template | null {
  const known = templates.get(key);
  if (known) return known;
  let i = 0;
  let same = true;
  const tree = recordTree(record, (value) => {
    same &&= i < count && value === lastXml[i];
    return value === '' ? (i++, '') : `\u0001${i++}\u0001`;
  });
  if (!same || i !== count) return null;
  const pieces = (builder.build(tree) as string).split(PLACEHOLDER); // [part, index, part, index, …, part]
  const parts = pieces.filter((_, j) => j % 2 === 0);
  const order = pieces.filter((_, j) => j % 2 === 1).map(Number);
  // The placeholders must be the non-empty values, each once.
  let filled = 0;
  for (let j = 0; j < count; j++) if (lastXml[j] !== '') filled++;
  if (order.length !== filled || new Set(order).size !== filled || !order.every((j) => j < count && lastXml[j] !== '')) return null;
  const formParts = parts.map((part, j) => formEncode(j === parts.length - 1 ? envelopeLine(part) : part));
  if (templates.size >= MAX_TEMPLATES) templates.clear();
  const template = { parts, formParts, order };
  templates.set(key, template);
  return template;
}

/** Collects and escapes the record's values; its template (null: build it whole). */
function prepare(record: UsageRecord): Template | null {
  checkNumbers(record);
  return templateFor(record, shapeKey(collect(record)));
}

/**
 * One JobUsageRecord, elements in the order the Gratia library wrote them (with EndTime added
 * after StartTime: GRACC's transfer summaries select on it).
 *
 * Byte for byte what fast-xml-parser's builder makes of the whole record (usageRecordXmlBuilt;
 * a test compares them), but the builder runs once per record shape: a record's values are
 * written into the markup of its shape's template. The builder walking every record was the
 * largest single cost of catch-up (docs/PERFORMANCE.md).
 */
export function usageRecordXml(record: UsageRecord): string {
  const template = prepare(record);
  if (!template) return usageRecordXmlBuilt(record);
  const { parts, order } = template;
  let xml = parts[0]!;
  for (let i = 0; i < order.length; i++) xml += lastXml[order[i]!]! + parts[i + 1]!;
  return xml;
}

/**
 * The record's line of the multiupdate body's arg1, form-encoded: exactly
 * encodedRecord(usageRecordXml(record)) (a test compares them), made in the same one pass:
 * the template's markup was form-encoded once for its shape, so only the values are escaped
 * and encoded (most are copied as they are, or come from the last record), and the XML itself
 * is never made. What delivery keeps of a record until it is sent (planEncodedBodies).
 */
export function usageRecordForm(record: UsageRecord): string {
  const template = prepare(record);
  if (!template) return encodedRecord(usageRecordXmlBuilt(record));
  const { formParts, order } = template;
  let form = formParts[0]!;
  for (let i = 0; i < order.length; i++) form += formValue(order[i]!) + formParts[i + 1]!;
  return form;
}

export interface ProbeDetails {
  probeName: string;
  siteName: string;
  grid: string;
  createTimeMs: number;
  /** name, version, type ("component", "runtime", "input") */
  software: { name: string; version: string; type: string }[];
}

/**
 * The handshake the Gratia library sent at start-up: which probe, for which site, with which
 * software. GRACC ignores it; the old collector keeps it.
 */
export function probeDetailsXml(d: ProbeDetails): string {
  const { element, parent } = nodes(inline);
  return builder.build([
    parent(
      'ProbeDetails',
      [
        parent('RecordIdentity', [], { 'urwg:recordId': `${d.probeName}:ProbeDetails:${d.createTimeMs}`, 'urwg:createTime': rfc3339Seconds(d.createTimeMs) }),
        element('ProbeName', d.probeName),
        element('SiteName', d.siteName),
        element('Grid', d.grid),
        ...d.software.map((sw) => element('Software', sw.name, { 'urwg:version': sw.version, 'urwg:type': sw.type })),
      ],
      { 'xmlns:urwg': UR_NAMESPACE },
    ),
  ]) as string;
}
