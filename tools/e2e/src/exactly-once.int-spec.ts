import { jetstreamManager } from '@nats-io/jetstream';
import { connect } from '@nats-io/transport-node';
import { sleep } from '@iot/testing';
import { planMessages, publishPlan } from './load';
import { startPipeline, tenantRows, type Pipeline } from './pipeline';

const DEVICES = Array.from({ length: 100 }, (_, i) => `load-${String(i + 1).padStart(3, '0')}`);

describe('10,000 messages from 100 devices, 1% duplicates and 1% invalid', () => {
  let p: Pipeline;
  beforeAll(async () => {
    p = await startPipeline(
      DEVICES.map((device) => ({ device, tenant: 'load', model: 'zenthos-esp32', state: 'active' })),
    );
  });
  afterAll(async () => {
    await p?.stop();
  });

  it('stores every valid reading exactly once and dead-letters every invalid one with the field it broke', async () => {
    const plan = planMessages(DEVICES, 100, Math.floor(Date.now() / 1000) - 3600);
    const valid = plan.filter((m) => m.kind === 'valid');
    const invalid = plan.filter((m) => m.kind === 'invalid');
    expect([
      plan.length,
      valid.length,
      plan.filter((m) => m.kind === 'duplicate').length,
      invalid.length,
    ]).toEqual([10_000, 9_800, 100, 100]);

    await publishPlan(p.mqtt.url, plan);
    const expectedRows = valid.length * 2;
    await p.waitFor(
      `${expectedRows} rows`,
      async () => (await tenantRows(p, 'load')) >= expectedRows,
      120_000,
    );
    await sleep(2_000); // any duplicate would have landed by now
    const [stats] = await p.pg.query<{ rows: string; distinct_keys: string; messages: string }>(
      `SELECT count(*)::text AS rows, count(DISTINCT (device_id, metric, ts))::text AS distinct_keys,
              count(DISTINCT (device_id, ts))::text AS messages FROM telemetry WHERE tenant_id = 'load'`,
    );
    expect(stats).toEqual({
      rows: String(expectedRows),
      distinct_keys: String(expectedRows),
      messages: String(valid.length),
    });

    const nc = await connect({ servers: p.nats.urls });
    try {
      const jsm = await jetstreamManager(nc);
      const fields: string[] = [];
      let seq = 1;
      for (;;) {
        const m = await jsm.direct.getMessage('DLQ_V1', { seq, next_by_subj: 'iot.dlq.v1.>' });
        if (!m) break;
        seq = m.seq + 1;
        expect(m.subject).toBe('iot.dlq.v1.demux.load');
        expect(m.header.get('iot-dlq-reason')).toBe('invalid-payload');
        fields.push(/field (\S+)/.exec(m.header.get('iot-dlq-detail'))![1]!);
      }
      expect(fields.sort()).toEqual(invalid.map((m) => m.field!).sort());
      // The bridge's messages went on to demux, demux's batches to the normalizer, and the
      // normalizer's to the writer, in packs (docs/adr/0011): each stream holds far fewer
      // JetStream messages than readings went through it, and every reading was stored once
      // all the same (the duplicates that shared a pack with their first copy too).
      const held = async (stream: string) => (await jsm.streams.info(stream)).state.messages;
      expect(await held('TELEMETRY_RAW_V1')).toBeLessThan(plan.length / 2);
      expect(await held('TELEMETRY_DECODED_V1')).toBeLessThan(valid.length / 2);
      expect(await held('TELEMETRY_NORMALIZED_V1')).toBeLessThan(valid.length / 2);
    } finally {
      await nc.close();
    }
  }, 300_000);
});
