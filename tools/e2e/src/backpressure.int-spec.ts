import { sleep } from '@iot/testing';
import { planMessages, publishPlan } from './load';
import {
  heldBackServices,
  pipelineReport,
  startPipeline,
  tenantReadings,
  tenantRows,
  type Pipeline,
} from './pipeline';

const DEVICES = Array.from({ length: 20 }, (_, i) => `bp-${String(i + 1).padStart(2, '0')}`);

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
 */
describe('backpressure: the database away for longer than the normalized stream holds', () => {
  let p: Pipeline;
  beforeAll(async () => {
    p = await startPipeline(
      DEVICES.map((device) => ({ device, tenant: 'bp', model: 'zenthos-esp32', state: 'active' })),
      { serviceEnv: { NATS_STREAM_STORAGE: '8MB', BACKPRESSURE_RATIO: '0.2' } },
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
});
