import { jetstreamManager } from '@nats-io/jetstream';
import { connect } from '@nats-io/transport-node';
import mqtt from 'mqtt';
import { Consumers } from '@iot/contracts';
import { consumerBacklog } from '@iot/messaging';
import { sleep, waitFor } from '@iot/testing';
import { planMessages, publishPlan } from './load';
import { startPipeline, type Pipeline } from './pipeline';

describe('per-device rate limit at the bridge', () => {
  let p: Pipeline;
  beforeAll(async () => {
    p = await startPipeline(
      [
        { device: 'chatty-1', tenant: 'rl', model: 'chatty', state: 'active' },
        { device: 'calm-1', tenant: 'rl', model: 'calm', state: 'active' },
      ],
      { bridgeEnv: { RATE_LIMIT: '1000/1000', RATE_LIMITS_BY_MODEL: 'chatty=0.1/5' } },
    );
  });
  afterAll(async () => {
    await p?.stop();
  });

  it("drops what a device sends past its model's limit, counts it, and says so in its status", async () => {
    const start = Math.floor(Date.now() / 1000) - 600;
    const chatty = planMessages(['chatty-1'], 20, start, 1_000_000)
      .slice(0, 20)
      .filter((m) => m.kind === 'valid');
    const calm = planMessages(['calm-1'], 20, start, 1_000_000).filter((m) => m.kind === 'valid');
    await publishPlan(p.mqtt.url, chatty, 'chatty');
    await publishPlan(p.mqtt.url, calm, 'calm');

    const messages = async (device: string) =>
      Number(
        (
          await p.pg.query<{ n: string }>(
            `SELECT count(DISTINCT ts)::text AS n FROM telemetry WHERE device_id = $1`,
            [device],
          )
        )[0]!.n,
      );
    await waitFor(
      'the calm device stored in full',
      async () => (await messages('calm-1')) === calm.length,
      20_000,
    );
    await sleep(1_000);
    expect(await messages('chatty-1')).toBe(5); // the burst; at 0.1/s no token comes back meanwhile

    const metrics = await (await fetch(`${p.service('mqtt-bridge').url}/metrics`)).text();
    expect(metrics).toContain(
      `iot_messages_processed_total{stage="mqtt-bridge",outcome="dropped",service="mqtt-bridge"} ${chatty.length - 5}`,
    );

    const nc = await connect({ servers: p.nats.urls });
    try {
      const jsm = await jetstreamManager(nc);
      const status = await jsm.streams.getMessage('TELEMETRY_RAW_V1', {
        last_by_subj: 'iot.status.v1.rl.chatty-1',
      });
      expect(status!.json()).toEqual(
        expect.objectContaining({ status: 'rate-limited', device: 'chatty-1', dropped: 1 }),
      );
    } finally {
      await nc.close();
    }
  });

  it('leaves device status to its own consumers: demux, which takes the raw stream whole, acks it unhandled', async () => {
    const nc = await connect({ servers: p.nats.urls });
    try {
      const jsm = await jetstreamManager(nc);
      const statuses = async () =>
        Object.values(
          (await jsm.streams.info('TELEMETRY_RAW_V1', { subjects_filter: 'iot.status.v1.>' })).state
            .subjects ?? {},
        ).reduce((n, count) => n + count, 0);
      const before = await statuses();
      const device = await mqtt.connectAsync(p.mqtt.url, { clientId: 'calm-1', clean: true });
      try {
        await device.publishAsync('zenthos/calm/calm-1/status', JSON.stringify({ status: 'online' }), {
          qos: 1,
        });
      } finally {
        await device.endAsync();
      }
      await waitFor(
        'the device status in the raw stream',
        async () => (await statuses()) === before + 1,
        10_000,
      );
      await waitFor(
        'demux to settle everything in the raw stream',
        async () => (await consumerBacklog(jsm, Consumers.demux)).lag === 0,
        10_000,
      );
      const metrics = await (await fetch(`${p.service('demux').url}/metrics`)).text();
      expect(metrics).toContain(
        `iot_messages_processed_total{stage="demux",outcome="skipped",service="demux"} ${before + 1}`,
      );
      // Not dead-lettered as telemetry that does not decode.
      expect((await jsm.streams.info('DLQ_V1')).state.messages).toBe(0);
    } finally {
      await nc.close();
    }
  });
});
