import { sleep } from '@iot/testing';
import { planMessages, publishPlan } from './load';
import {
  deviceWithKey,
  heldBackServices,
  pipelineReport,
  startPipeline,
  tenantReadings,
  tenantRows,
  type Pipeline,
} from './pipeline';

const DEVICES = Array.from({ length: 20 }, (_, i) => `bp-${String(i + 1).padStart(2, '0')}`);
/** A gateway that posts over HTTP, in a tenant of its own. */
const { key: gatewayKey, record: GATEWAY } = deviceWithKey('bp-gateway', 'bph');

/**
 * The streams' limits discard their oldest messages, processed or not. With PostgreSQL down,
 * the writer's backlog grows in the normalized stream; past its limit, readings the devices
 * were told were taken would be gone. Here the streams get 8 MB in all (NATS_STREAM_STORAGE:
 * raw 2 MiB, decoded and normalized 1 MiB each), and 3,500 messages arrive while the
 * database is away: more than the normalized stream holds (about 1.5 MiB of them), fewer
 * than the raw one does. The normalizer, then demux, hold back (BACKPRESSURE_RATIO 0.2: what
 * arrives at 200 msg/s in the 5 s between checks, and longer on a busy machine, fits in the
 * rest of the stream), the backlog waits in the raw stream, and every reading is stored once
 * the database is back.
 *
 * Past the raw stream, HTTP ingest refuses (INGEST_REFUSE_RATIO 0.5 here): a message answered
 * 503 stays with the device, one answered 202 is stored.
 */
describe('backpressure: the database away for longer than the normalized stream holds', () => {
  let p: Pipeline;
  beforeAll(async () => {
    p = await startPipeline(
      [
        ...DEVICES.map((device) => ({
          device,
          tenant: 'bp',
          model: 'zenthos-esp32',
          state: 'active' as const,
        })),
        GATEWAY,
      ],
      {
        serviceEnv: { NATS_STREAM_STORAGE: '8MB', BACKPRESSURE_RATIO: '0.2' },
        bridgeEnv: { INGEST_REFUSE_RATIO: '0.5' },
      },
    );
  });
  afterAll(async () => {
    await p?.stop();
  });

  const heldBack = async (service: string) => (await heldBackServices(p)).includes(service);

  it('holds the backlog back in the raw stream and loses nothing', async () => {
    const plan = planMessages(DEVICES, 175, Math.floor(Date.now() / 1000) - 7200, 1_000_000);
    const valid = plan.filter((m) => m.kind === 'valid');
    await p.pg.stopServer();
    await publishPlan(p.mqtt.url, plan, 'zenthos-esp32', 200);
    await p.waitFor('the normalizer held back', () => heldBack('normalizer'), 15_000);
    await p.waitFor('demux held back', () => heldBack('demux'), 15_000);
    await sleep(1_000);
    const report = await pipelineReport(p);
    await p.pg.startServer();

    const expected = valid.length * 2;
    await p.waitFor(
      `${expected} rows (while held back: ${report})`,
      async () => (await tenantRows(p, 'bp')) >= expected,
      120_000,
    );
    await sleep(2_000);
    const stats = await tenantReadings(p, 'bp');
    expect(stats).toEqual({ rows: String(expected), messages: String(valid.length) });
    await p.waitFor(
      'both going on',
      async () => !(await heldBack('normalizer')) && !(await heldBack('demux')),
    );
  }, 300_000);

  it('refuses HTTP messages with a 503 before the raw stream would discard them, and stores every one it took', async () => {
    const bridge = p.service('mqtt-bridge').url;
    const t0 = Date.now() - 3_600_000;
    // Five readings that change with every message, so that no deadband holds one back.
    const post = (i: number) =>
      fetch(`${bridge}/v1/telemetry`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', authorization: `Bearer ${gatewayKey}` },
        body: JSON.stringify({
          message_id: `g-${i}`,
          ts: new Date(t0 + i * 100).toISOString(),
          readings: Object.fromEntries(['a', 'b', 'c', 'd', 'e'].map((k, j) => [`bp_${k}`, i + j / 10])),
        }),
      });
    const refusing = async () =>
      /^iot_ingest_refusing\{[^}]*\} 1$/m.test(await (await fetch(`${bridge}/metrics`)).text());
    await p.pg.stopServer();
    // Sent one after another, at most 150 a second (about 100 here): the stages' checks,
    // every 5 s, see the next stream fill well before it would overflow.
    let accepted = 0;
    let refused: Response | undefined;
    const until = Date.now() + 120_000;
    for (let i = 0; !refused && Date.now() < until; i++) {
      const res = await post(i);
      if (res.status === 202) accepted++;
      else if (res.status === 503) refused = res;
      else throw new Error(`message ${i}: ${res.status} ${await res.text()}`);
      if (i % 15 === 14) await sleep(100);
    }
    const report = await pipelineReport(p);
    expect({ refused: refused?.status, report }).toEqual({ refused: 503, report });
    expect(refused!.headers.get('retry-after')).toBe('30');
    expect(((await refused!.json()) as { detail: string }).detail).toMatch(
      /^the platform is behind: demux has \d+% of TELEMETRY_RAW_V1's limit still to process.*send it again after the Retry-After delay$/,
    );
    expect(await refusing()).toBe(true);
    expect(accepted).toBeGreaterThan(1_000);
    await p.pg.startServer();

    await p.waitFor(
      `${accepted} messages of the gateway stored (while refusing: ${report})`,
      async () => Number((await tenantReadings(p, 'bph')).messages) >= accepted,
      120_000,
    );
    await sleep(2_000);
    expect(await tenantReadings(p, 'bph')).toEqual({
      rows: String(accepted * 5),
      messages: String(accepted),
    });
    // Caught up, the bridge takes messages again.
    await p.waitFor('HTTP ingest taking messages again', async () => (await post(1_000_000)).status === 202);
    expect(await refusing()).toBe(false);
  }, 300_000);
});
