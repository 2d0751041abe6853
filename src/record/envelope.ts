/**
 * The envelope of a multiupdate bundle, in one place: the RecordEnvelope document around the
 * records' XML, and the application/x-www-form-urlencoded body that carries it (command, arg1,
 * and the fields the Gratia library sent with it), cut into bodies under a size limit.
 * Pure functions: what is sent again must come out byte-identical (collectors deduplicate by
 * content). The bodies delivery sends are planned from records form-encoded in advance
 * (planEncodedBodies) and come out as bytes. Sending the bodies is the sender's business (src/pipeline/sender.ts).
 */

export const XML_DECLARATION = '<?xml version="1.0" encoding="UTF-8"?>';

/** What comes before the records in the multiupdate payload. */
export const ENVELOPE_HEAD = `${XML_DECLARATION}\n<RecordEnvelope>\n`;
/** What comes after them. */
export const ENVELOPE_TAIL = '</RecordEnvelope>';

/** One record's line in the payload (encodedRecord form-encodes each line on its own). */
export function envelopeLine(recordXml: string): string {
  return recordXml + '\n';
}

/** The multiupdate payload: the declaration, then each record on its own line. */
export function recordEnvelope(recordsXml: readonly string[]): string {
  return ENVELOPE_HEAD + recordsXml.map(envelopeLine).join('') + ENVELOPE_TAIL;
}

export interface BundleInfo {
  /** Records still waiting in the queue, reported to the collector as "backlog". */
  backlog?: number;
  bundleSize?: number;
}

// The request body is application/x-www-form-urlencoded, byte for byte as URLSearchParams
// writes it: collectors deduplicate by content, so a record sent again must come out the same.
// URLSearchParams encodes its values in JavaScript, character by character, which for a 1 MB
// bundle cost ~50 µs per record (and splitting a bundle encoded it again). Here each record's
// line of the envelope is encoded once, with the native encodeURIComponent, and a body is the
// concatenation of the encoded parts, so its size is known before it is built.

/** encodeURIComponent's output where URLSearchParams writes something else. */
const NOT_AS_URLSEARCHPARAMS = /%20|[!'()~]/g;
const AS_URLSEARCHPARAMS: Record<string, string> = { '%20': '+', '!': '%21', "'": '%27', '(': '%28', ')': '%29', '~': '%7E' };
/** The characters of a value that make encodeURIComponent's output differ from URLSearchParams'. */
const ENCODED_OTHERWISE = /[ !'()~]/;
/** A value both leave as it is. */
const FORM_PLAIN = /^[A-Za-z0-9*._-]*$/;
const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/g;

/**
 * One form value exactly as URLSearchParams encodes it: UTF-8, percent-escapes in upper case,
 * space as '+', only alphanumerics and `*-._` left as they are (encodeURIComponent also leaves
 * `!'()~`). The result is ASCII, so its length is its size in bytes. A value with nothing to
 * encode is returned as it is, and one without `[ !'()~]` as encodeURIComponent gives it.
 */
export function formEncode(value: string): string {
  if (FORM_PLAIN.test(value)) return value;
  let encoded: string;
  try {
    encoded = encodeURIComponent(value);
  } catch (err) {
    // encodeURIComponent throws on a lone surrogate; URLSearchParams writes U+FFFD for it.
    if (!(err instanceof URIError)) throw err;
    encoded = encodeURIComponent(value.replace(LONE_SURROGATE, '\uFFFD'));
  }
  return ENCODED_OTHERWISE.test(value) ? encoded.replace(NOT_AS_URLSEARCHPARAMS, (s) => AS_URLSEARCHPARAMS[s]!) : encoded;
}

/**
 * A record's part of arg1, encoded once. Encoding the parts one by one gives the same bytes as
 * encoding the whole envelope: the encoding goes code point by code point, and every part ends
 * with a newline, so no surrogate pair can straddle two parts.
 */
export function encodedRecord(recordXml: string): string {
  return formEncode(envelopeLine(recordXml));
}

/** Everything before the first record: the command and the start of arg1. */
const FORM_HEAD = `command=multiupdate&arg1=${formEncode(ENVELOPE_HEAD)}`;

/** Everything after the last record: the end of arg1 and the other fields, in Gratia's order. */
function formTail(probeName: string, backlog: number, bundleSize: number): string {
  const backlogText = formEncode(String(backlog));
  return (
    `${formEncode(ENVELOPE_TAIL)}&from=${formEncode(probeName)}&xmlfiles=${backlogText}&tarfiles=0&maxpendingfiles=0` +
    `&backlog=${backlogText}&bundlesize=${formEncode(String(bundleSize))}`
  );
}

/** The body for encoded records start..end-1 (records from encodedRecord). */
function formOfEncoded(encoded: readonly string[], start: number, end: number, probeName: string, backlog: number, bundleSize = end - start): string {
  return FORM_HEAD + encoded.slice(start, end).join('') + formTail(probeName, backlog, bundleSize);
}

/** The urlencoded form GRACC and the old collector accept for a bundle. */
export function multiupdateForm(recordsXml: readonly string[], probeName: string, info: BundleInfo = {}): string {
  const encoded = recordsXml.map(encodedRecord);
  return formOfEncoded(encoded, 0, encoded.length, probeName, info.backlog ?? 0, info.bundleSize ?? recordsXml.length);
}

/** Where a bundle is cut: records start..end-1, in a body of `bytes` bytes. */
interface Cut {
  start: number;
  end: number;
  bytes: number;
}

/**
 * Cuts encoded records into ranges whose bodies stay under maxBytes (halving where one is too
 * big; a single record always goes alone). A range's size is the sum of its parts' lengths plus
 * the fixed fields, so no body is built to learn its size.
 */
function cuts(encoded: readonly string[], probeName: string, maxBytes: number, backlog: number): Cut[] {
  // before[i]: bytes of the encoded records before record i.
  const before = [0];
  for (const part of encoded) before.push(before[before.length - 1]! + part.length);
  const size = (start: number, end: number) => FORM_HEAD.length + before[end]! - before[start]! + formTail(probeName, backlog, end - start).length;

  const out: Cut[] = [];
  const plan = (start: number, end: number): void => {
    if (start >= end) return;
    const bytes = size(start, end);
    if (bytes <= maxBytes || end - start === 1) {
      out.push({ start, end, bytes });
      return;
    }
    const mid = start + Math.ceil((end - start) / 2);
    plan(start, mid);
    plan(mid, end);
  };
  plan(0, encoded.length);
  return out;
}

/**
 * Cuts records into request bodies that stay under maxBytes (halving where one is too big).
 * Each record is encoded once, and only the bodies that are sent get built.
 */
export function planBodies(records: readonly string[], probeName: string, maxBytes: number, backlog: number): { start: number; end: number; form: string }[] {
  const encoded = records.map(encodedRecord);
  return cuts(encoded, probeName, maxBytes, backlog).map(({ start, end }) => ({ start, end, form: formOfEncoded(encoded, start, end, probeName, backlog) }));
}

/**
 * planBodies for records already encoded (encodedRecord, or usageRecordForm in src/record/xml.ts),
 * each body as the bytes to send: the parts are written once, straight into a buffer of the size
 * planned (the form is ASCII: a character is a byte). Building the body as a string first cost
 * a copy of it, and the HTTP client another to make bytes of it (bench/encode.ts).
 */
export function planEncodedBodies(encoded: readonly string[], probeName: string, maxBytes: number, backlog: number): { start: number; end: number; form: Buffer }[] {
  return cuts(encoded, probeName, maxBytes, backlog).map(({ start, end, bytes }) => ({ start, end, form: bodyOfEncoded(encoded, start, end, probeName, backlog, bytes) }));
}

function bodyOfEncoded(encoded: readonly string[], start: number, end: number, probeName: string, backlog: number, bytes: number): Buffer {
  const body = Buffer.allocUnsafe(bytes);
  let at = body.write(FORM_HEAD, 0, 'latin1');
  for (let i = start; i < end; i++) at += body.write(encoded[i]!, at, 'latin1');
  at += body.write(formTail(probeName, backlog, end - start), at, 'latin1');
  if (at !== bytes) throw new Error(`a planned body came out ${at} bytes, not ${bytes}: a part was not form-encoded`);
  return body;
}
