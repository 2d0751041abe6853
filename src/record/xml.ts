/**
 * Gratia XML: a UsageRecord -> one JobUsageRecord element (no XML declaration), and the
 * ProbeDetails handshake; the RecordEnvelope around records is src/record/envelope.ts. Built
 * with fast-xml-parser's builder, which escapes & < > " ' in text and attributes; characters
 * XML 1.0 forbids are removed first, so the output always parses (one bad character used to
 * stop the old probe for good).
 */
import { XMLBuilder } from 'fast-xml-parser';
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
 * Where a record's values go. Building a record's tree calls `text(slot, value)` for every text
 * and attribute value (already escaped with xmlText), in document order; `slot` names the place
 * (element or attribute), so that the sequence of slots says which elements the record has.
 */
type TextSink = (slot: string, value: string) => string;

/** Writes each value into the tree itself: the reference way of building a record. */
const inline: TextSink = (_slot, value) => value;

/** Node builders for fast-xml-parser's preserveOrder tree; every value goes through xmlText and `text`. */
function nodes(text: TextSink) {
  const attributesOf = (name: string, attributes: Record<string, string>) =>
    Object.fromEntries(Object.entries(attributes).map(([k, v]) => [k, text(`${name}@${k}`, xmlText(v))]));
  const element = (name: string, value: string | number, attributes?: Record<string, string>): Node => {
    const node: Node = {};
    if (attributes) node[':@'] = attributesOf(name, attributes); // attributes first: document order
    node[name] = [{ '#text': text(name, xmlText(String(value))) }];
    return node;
  };
  const parent = (name: string, children: Node[], attributes?: Record<string, string>): Node => {
    const node: Node = {};
    if (attributes) node[':@'] = attributesOf(name, attributes);
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
 * keyed by the slots a record has and which of its values are empty (an empty value makes
 * `<X/>`, so it is part of the shape). A site's records come in a handful of shapes.
 */
interface Template {
  /** The markup: parts[0], a value, parts[1], … */
  parts: string[];
  /** Which value (in the order recordTree met them) goes after parts[i]. */
  order: number[];
}
const templates = new Map<string, Template>();
const MAX_TEMPLATES = 1000;
// Values are escaped with xmlText, which removes every C0 control character but tab, LF and CR,
// and the builder writes none: so \u0001 can only come from a placeholder.
const PLACEHOLDER = /\u0001(\d+)\u0001/;

/** Splits a record built with placeholders into its template; null unless each value appears once. */
function templateOf(built: string, valueCount: number): Template | null {
  const pieces = built.split(PLACEHOLDER); // [part, index, part, index, …, part]
  const parts = pieces.filter((_, i) => i % 2 === 0);
  const order = pieces.filter((_, i) => i % 2 === 1).map(Number);
  const each = new Set(order);
  return order.length === valueCount && each.size === valueCount ? { parts, order } : null;
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
  checkNumbers(record);
  const values: string[] = [];
  let shape = '';
  const tree = recordTree(record, (slot, value) => {
    shape += value === '' ? `${slot}=;` : `${slot};`;
    if (value === '') return '';
    values.push(value);
    return `\u0001${values.length - 1}\u0001`;
  });
  let template: Template | null | undefined = templates.get(shape);
  if (!template) {
    template = templateOf(builder.build(tree) as string, values.length);
    if (!template) return usageRecordXmlBuilt(record); // never expected; stay correct
    if (templates.size >= MAX_TEMPLATES) templates.clear();
    templates.set(shape, template);
  }
  const { parts, order } = template;
  let xml = parts[0]!;
  for (let i = 0; i < order.length; i++) xml += values[order[i]!]! + parts[i + 1]!;
  return xml;
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
