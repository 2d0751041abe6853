/**
 * EXPERIMENT (bench only, not the product): usageRecordXml written as one string template per
 * record with one escape pass per value, instead of fast-xml-parser, producing the SAME BYTES
 * (collectors deduplicate by content, so a re-sent record must be byte-identical; bench/encode.ts
 * checks every record against the shipped function). It measures what the product owner's
 * choice of fast-xml-parser costs. (Its form half, each record form-encoded once and bundles
 * split from sizes, went into src/pipeline/sender.ts.)
 */

type Anything = any; // eslint-disable-line @typescript-eslint/no-explicit-any

export interface Helpers {
  xmlSafe(value: string): string;
  isoDuration(ms: number): string;
  rfc3339(ms: number): string;
  EncodeError: new (message: string) => Error;
}

const UR = 'http://www.gridforum.org/2003/ur-wg';
const ROOT_OPEN = `<JobUsageRecord xmlns="${UR}" xmlns:urwg="${UR}" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xsi:schemaLocation="${UR} file:///u:/OSG/urwg-schema.11.xsd">`;
const ENTITY: Record<string, string> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', "'": '&apos;', '"': '&quot;' };
const SPECIAL = /[&<>'"]/g;
const NEEDS = /[&<>'"]/;
/** Anything xmlSafe might remove (a superset: then xmlSafe itself decides). */
const MAYBE_UNSAFE = /[\u0000-\u0008\u000B\u000C\u000E-\u001F\uD800-\uDFFF\uFFFE\uFFFF]/;

export function makeFastXml(h: Helpers): (record: Anything) => string {
  const esc = (value: string): string => {
    const safe = MAYBE_UNSAFE.test(value) ? h.xmlSafe(value) : value;
    return NEEDS.test(safe) ? safe.replace(SPECIAL, (c) => ENTITY[c]!) : safe;
  };
  const el = (name: string, value: string | number): string => {
    const text = esc(String(value));
    return text === '' ? `<${name}/>` : `<${name}>${text}</${name}>`;
  };
  const opt = (name: string, value: string | undefined): string => (value === undefined || value === '' ? '' : el(name, value));
  const res = (description: string, value: string): string => {
    const text = esc(String(value));
    const open = `<Resource urwg:description="${esc(description)}"`;
    return text === '' ? `${open}/>` : `${open}>${text}</Resource>`;
  };
  const createTime = (ms: number) => h.rfc3339(Math.floor(ms / 1000) * 1000).replace('.000Z', 'Z');

  return (r: Anything): string => {
    if (!Number.isFinite(r.networkBytes) || !Number.isFinite(r.durationMs)) throw new h.EncodeError('size or duration is not a number');
    const duration = h.isoDuration(r.durationMs);
    const user = opt('DN', r.dn) + opt('LocalUserId', r.localUserId) + opt('VOName', r.voName) + opt('ReportableVOName', r.reportableVoName);
    let resources = '';
    for (const x of r.resources) resources += res(x.description, x.value);
    const network = esc(String(Math.trunc(r.networkBytes)));
    const networkOpen = `<Network urwg:storageUnit="b" urwg:phaseUnit="${esc(duration)}" urwg:metric="total" urwg:description="${esc(r.action)}"`;
    return (
      ROOT_OPEN +
      `<RecordIdentity urwg:recordId="${esc(r.recordId)}" urwg:createTime="${esc(createTime(r.createTimeMs))}"/>` +
      `<JobIdentity>${el('LocalJobId', r.localJobId)}</JobIdentity>` +
      (user === '' ? '<UserIdentity/>' : `<UserIdentity>${user}</UserIdentity>`) +
      resources +
      el('StartTime', h.rfc3339(r.startTimeMs)) +
      el('EndTime', h.rfc3339(r.endTimeMs)) +
      (network === '' ? `${networkOpen}/>` : `${networkOpen}>${network}</Network>`) +
      el('WallDuration', duration) +
      opt('SubmitHost', r.submitHost) +
      el('Status', r.status) +
      el('ProbeName', r.probeName) +
      el('SiteName', r.siteName) +
      el('Grid', r.grid) +
      el('Njobs', r.njobs ?? 1) +
      res('ResourceType', 'Storage') +
      '</JobUsageRecord>'
    );
  };
}
