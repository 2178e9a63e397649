import { sleep, waitFor } from '@iot/testing';
import { planMessages, publishPlan } from './load';
import { pipelineReport, startPipeline, tenantReadings, tenantRows, type Pipeline } from './pipeline';

const DEVICES = Array.from({ length: 20 }, (_, i) => `f-${String(i + 1).padStart(2, '0')}`);

describe('faults during a run: PostgreSQL down for 30 seconds, the bridge killed and restarted', () => {
  let p: Pipeline;
  beforeAll(async () => {
    p = await startPipeline(
      DEVICES.map((device) => ({ device, tenant: 'faults', model: 'zenthos-esp32', state: 'active' })),
    );
  });
  afterAll(async () => {
    await p?.stop();
  });

  it('loses nothing and duplicates nothing', async () => {
    // 2,000 messages over about 40 seconds (one resend and one invalid payload among them).
    const plan = planMessages(DEVICES, 100, Math.floor(Date.now() / 1000) - 7200, 1_000_000);
    const valid = plan.filter((m) => m.kind === 'valid');
    const sending = publishPlan(p.mqtt.url, plan, 'zenthos-esp32', 50);

    await sleep(5_000);
    await p.pg.stopServer();
    await sleep(5_000);
    const bridge = p.service('mqtt-bridge');
    bridge.process.signal('SIGKILL'); // QoS 1 messages in flight lose their PUBACK; the broker resends them
    await sleep(1_000);
    await bridge.process.restart();
    await waitFor(
      'the bridge to be ready again',
      async () => (await fetch(`${bridge.url}/readyz`)).ok,
      30_000,
    );
    await sleep(24_000); // PostgreSQL down for 30 s in all
    await p.pg.startServer();
    await sending;

    const expected = valid.length * 2;
    await p.waitFor(`${expected} rows`, async () => (await tenantRows(p, 'faults')) >= expected, 120_000);
    await sleep(2_000);
    const stats = await tenantReadings(p, 'faults');
    expect(stats).toEqual({ rows: String(expected), messages: String(valid.length) });
    // The one invalid payload, and nothing else, is in the DLQ.
    const report = await pipelineReport(p);
    expect(report).toContain('DLQ_V1: 1 messages');
    expect(report).toContain('iot.dlq.v1.demux.faults: invalid-payload');
  }, 300_000);
});
