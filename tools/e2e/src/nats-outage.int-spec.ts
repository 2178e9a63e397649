import { randomUUID } from 'node:crypto';
import { sleep, waitFor } from '@iot/testing';
import { mosquittoPub, startPipeline, type Pipeline } from './pipeline';

/** Ten readings of a device, each its own message, published at QoS 1 with mosquitto_pub. */
function publishReadings(p: Pipeline, device: string, count: number, from: number) {
  for (let i = 0; i < count; i++) {
    const payload = {
      message_id: randomUUID(),
      device_id: device,
      timestamp: from + i,
      sensors: { temperature: 20 + i / 10 },
    };
    mosquittoPub(p, `zenthos/zenthos-esp32/${device}/telemetry`, device, JSON.stringify(payload));
  }
}

describe('NATS down for 10 seconds while the pipeline runs', () => {
  let p: Pipeline;
  beforeAll(async () => {
    p = await startPipeline([{ device: 'dev-1', tenant: 'acme', model: 'zenthos-esp32', state: 'active' }]);
  });
  afterAll(async () => {
    await p?.stop();
  });

  const count = () =>
    p.pg.query<{ n: string; distinct_ts: string }>(
      `SELECT count(*)::text AS n, count(DISTINCT ts)::text AS distinct_ts FROM telemetry WHERE device_id = 'dev-1'`,
    );

  it('crashes no service, and stores the messages sent during the gap once it is back', async () => {
    const start = Math.floor(Date.now() / 1000) - 100;
    publishReadings(p, 'dev-1', 10, start);
    await p.waitFor('the first ten readings', async () => (await count())[0]!.n === '10', 20_000);

    const nats = p.nats.nodes[0]!.process;
    await nats.stop();
    publishReadings(p, 'dev-1', 10, start + 10); // accepted by the broker, held there or in the bridge
    await sleep(10_000);
    await nats.restart();
    await p.nats.waitHealthy();

    await p.waitFor(
      'all twenty readings after the outage',
      async () => (await count())[0]!.n === '20',
      60_000,
    );
    await sleep(1_000);
    expect(await count()).toEqual([{ n: '20', distinct_ts: '20' }]);
    for (const s of p.services) {
      const res = await fetch(`${s.url}/healthz`);
      expect({ service: s.name, status: res.status }).toEqual({
        service: s.name,
        status: 200,
      });
    }
    // And each is ready again: reconnected to NATS, consumers attached.
    for (const s of p.services)
      await waitFor(`${s.name} ready again`, async () => (await fetch(`${s.url}/readyz`)).ok, 30_000);
  });
});
