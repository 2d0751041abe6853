/** A usage record as the mapping makes it for the facts sheet's GridFTP transfer (XML and envelope tests). */
import type { UsageRecord } from '../../src/record/mapping';

export const SAMPLE_RECORD: UsageRecord = {
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
