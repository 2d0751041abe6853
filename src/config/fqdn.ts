/**
 * This host's fully qualified name, for the default ProbeName ("dCache-transfer:<FQDN>").
 * GRACC summarises transfers by ProbeName and finds the site by the host name after the
 * colon. The old probe's ProbeConfig got it at installation from `hostname -f` (so did the
 * Gratia library's genDefaultProbeName). The steps here:
 *
 *  1. os.hostname(), when it has a dot;
 *  2. else `hostname -f`, as the old probe (the canonical name getaddrinfo gives);
 *  3. else the system resolver: the name's addresses (getaddrinfo: /etc/hosts, then DNS with
 *     resolv.conf's search domains) and the name of each address (getnameinfo: /etc/hosts,
 *     then the PTR record);
 *  4. else the short name, marked unqualified, so that the caller warns (naming probe.name).
 *
 * In 2 and 3 the first name with a dot that is not "localhost…" is taken. The resolver is a
 * parameter, so that the steps are tested without the network.
 */
import { execFile } from 'node:child_process';
import { promises as dns } from 'node:dns';
import { hostname } from 'node:os';
import { errorMessage } from '../lib';

export interface HostResolver {
  /** This host's canonical name (`hostname -f`). */
  canonicalName(): Promise<string>;
  /** Every address of a name (dns.lookup with all: true). */
  addresses(name: string): Promise<string[]>;
  /** The name of an address (dns.lookupService). */
  nameOf(address: string): Promise<string>;
}

export const SYSTEM_RESOLVER: HostResolver = {
  canonicalName: () =>
    new Promise((resolve, reject) =>
      execFile('hostname', ['-f'], { timeout: LOOKUP_TIMEOUT_MS }, (err, stdout, stderr) => (err ? reject(new Error(`hostname -f: ${stderr.trim() || err.message}`)) : resolve(stdout.trim()))),
    ),
  addresses: async (name) => (await dns.lookup(name, { all: true })).map((a) => a.address),
  nameOf: async (address) => (await dns.lookupService(address, 0)).hostname,
};

export interface HostName {
  name: string;
  /** False when only the short name was found. */
  qualified: boolean;
  /** How it was found, or why no qualified name was (for the warning). */
  how: string;
}

const qualified = (name: string) => name.includes('.') && !/^localhost(\.|$)/i.test(name) && !name.endsWith('.');

/** Gives up on the resolver after this long (a broken DNS must not hold up the start). */
export const LOOKUP_TIMEOUT_MS = 5_000;

function within<T>(ms: number, work: Promise<T>): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no answer in ${ms / 1000} s`)), ms);
  });
  return Promise.race([work, timeout]).finally(() => clearTimeout(timer));
}

export async function fullyQualifiedHostName(short: string = hostname(), resolver: HostResolver = SYSTEM_RESOLVER, timeoutMs = LOOKUP_TIMEOUT_MS): Promise<HostName> {
  if (qualified(short)) return { name: short, qualified: true, how: 'the host name' };
  const tried: string[] = [];
  const attempt = async <T>(what: string, work: () => Promise<T>): Promise<T | undefined> => {
    try {
      return await within(timeoutMs, work());
    } catch (err) {
      tried.push(`${what}: ${errorMessage(err)}`);
      return undefined;
    }
  };
  const canonical = await attempt('hostname -f', () => resolver.canonicalName());
  if (canonical !== undefined && qualified(canonical)) return { name: canonical, qualified: true, how: 'hostname -f' };
  if (canonical !== undefined) tried.push(`hostname -f says ${canonical || 'nothing'}`);
  for (const address of (await attempt(`cannot resolve ${short}`, () => resolver.addresses(short))) ?? []) {
    const name = await attempt(address, () => resolver.nameOf(address));
    if (name !== undefined && qualified(name)) return { name, qualified: true, how: `the name of ${address}, an address of ${short}` };
    if (name !== undefined) tried.push(`${address} is named ${name}`);
  }
  return { name: short, qualified: false, how: tried.join('; ') };
}
