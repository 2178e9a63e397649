import { runMigrations } from '@iot/persistence';
import { startPostgres, type PostgresHandle } from '@iot/testing';
import type { NormalizedTelemetry } from '@iot/contracts';
import { TelemetryBatchWriter, TelemetryColumns } from './telemetry-batch-writer';

describe('TelemetryBatchWriter (real PostgreSQL)', () => {
  let pg: PostgresHandle;
  let sut: TelemetryBatchWriter;

  beforeAll(async () => {
    pg = await startPostgres();
    expect(await runMigrations(pg.url)).toContain('TelemetryStore1763900000000');
    // a second run on the same database applies nothing: migrations are idempotent
    expect(await runMigrations(pg.url)).toEqual([]);
    sut = TelemetryBatchWriter.connect(pg.url);
  });
  afterAll(async () => {
    await sut?.close();
    await pg?.stop();
  });

  const now = Date.now();
  /** A message of one point. */
  const row = (metric: string, value: number, ts = now): NormalizedTelemetry => ({
    tenant: 'demo',
    device: 'demo-0001',
    messageId: `m-${metric}-${ts}`,
    ts,
    receivedAt: ts + 5,
    points: [{ metric, value, unit: 'Cel', quality: 'good' }],
  });
  const write = (writer: TelemetryBatchWriter, messages: NormalizedTelemetry[]) =>
    writer.write(TelemetryColumns.of(messages));

  it('stores rows once, even when the same batch is written again, and keeps the rollup exact', async () => {
    const batch = [row('temperature', 20, now), row('temperature', 22, now + 1000), row('humidity', 50, now)];
    await write(sut, batch);
    await write(sut, batch);
    await write(sut, [batch[0]!]);
    const rows = await pg.query<{ metric: string; value: number }>(
      `SELECT metric, value FROM telemetry WHERE device_id = 'demo-0001' ORDER BY metric, ts`,
    );
    expect(rows).toEqual([
      { metric: 'humidity', value: 50 },
      { metric: 'temperature', value: 20 },
      { metric: 'temperature', value: 22 },
    ]);
    const rollup = await pg.query<{ count: string; sum: number }>(
      `SELECT sum(count)::text AS count, sum(sum) AS sum FROM telemetry_5m WHERE metric = 'temperature'`,
    );
    expect(rollup).toEqual([{ count: '2', sum: 42 }]);
  });

  it('stores the new rows of a batch that also holds stored ones, and a row repeated within one batch once', async () => {
    // A writer of its own: its first write is a plain INSERT, which must fail on the stored
    // row without writing anything, and then be written again skipping that row.
    const fresh = TelemetryBatchWriter.connect(pg.url);
    try {
      const t = now + 60_000;
      await write(fresh, [row('co2', 400, t)]);
      await write(fresh, [row('co2', 400, t), row('co2', 410, t + 1000), row('co2', 410, t + 1000)]);
      // Within the idempotent spell a batch of only new rows is stored too.
      await write(fresh, [row('co2', 420, t + 2000)]);
    } finally {
      await fresh.close();
    }
    const rows = await pg.query<{ value: number }>(
      `SELECT value FROM telemetry WHERE metric = 'co2' ORDER BY ts`,
    );
    expect(rows).toEqual([{ value: 400 }, { value: 410 }, { value: 420 }]);
    const [rollup] = await pg.query<{ count: string; sum: number }>(
      `SELECT sum(count)::text AS count, sum(sum) AS sum FROM telemetry_5m WHERE metric = 'co2'`,
    );
    expect(rollup).toEqual({ count: '3', sum: 1230 });
  });

  it('stores texts with quotes, backslashes, commas, braces and non-ASCII as sent, and every point of a message', async () => {
    const odd = ['we"ird\\name', 'a,b {c}', 'NULL', '', ' spaced ', 'µS/cm²'];
    const ts = now + 120_000;
    await write(sut, [
      {
        ...row('x', 0, ts),
        device: 'demo-odd',
        points: odd.map((metric, i) => ({
          metric,
          value: i + 0.5,
          unit: metric,
          quality: 'clamped' as const,
        })),
      },
    ]);
    const rows = await pg.query<{ metric: string; unit: string; value: number; quality: string }>(
      `SELECT metric, unit, value, quality FROM telemetry WHERE device_id = 'demo-odd' ORDER BY value`,
    );
    expect(rows).toEqual(
      odd.map((metric, i) => ({ metric, unit: metric, value: i + 0.5, quality: 'clamped' })),
    );
  });

  it('updates the rollup in place: a second batch into the same buckets leaves their rows on their pages', async () => {
    // 300 series in one 5-minute bucket of their own fill several pages of telemetry_5m. With
    // room left on each page, updating them writes each new version beside the old (a HOT
    // update: no new index entry); on full pages every update moves the row elsewhere.
    const ts = Date.UTC(2026, 10, 20, 12, 0, 0);
    const metrics = Array.from({ length: 300 }, (_, i) => `hot-${i}`);
    const batchAt = (t: number) => metrics.map((metric) => ({ ...row(metric, 1, t), device: 'demo-hot' }));
    const pages = async () =>
      new Map(
        (
          await pg.query<{ metric: string; page: string }>(
            `SELECT metric, (ctid::text::point)[0]::text AS page FROM telemetry_5m WHERE device_id = 'demo-hot'`,
          )
        ).map((r) => [r.metric, r.page]),
      );
    await write(sut, batchAt(ts));
    const before = await pages();
    await write(sut, batchAt(ts + 1000));
    const after = await pages();
    expect(after.size).toBe(metrics.length);
    const moved = metrics.filter((m) => before.get(m) !== after.get(m));
    expect(moved.length).toBeLessThan(metrics.length / 10);
    const [sum] = await pg.query<{ count: string }>(
      `SELECT sum(count)::text AS count FROM telemetry_5m WHERE device_id = 'demo-hot'`,
    );
    expect(sum!.count).toBe(String(2 * metrics.length));
  });

  it('keeps event time and ingest time apart, with millisecond precision', async () => {
    const ts = Date.UTC(2026, 10, 23, 9, 0, 0, 250);
    await write(sut, [
      {
        ...row('pressure', 101325, ts),
        receivedAt: ts + 1500,
        points: [{ metric: 'pressure', value: 101325, unit: 'Pa', quality: 'good' }],
      },
    ]);
    const [r] = await pg.query<{ ts: Date; received_at: Date; unit: string }>(
      `SELECT ts, received_at, unit FROM telemetry WHERE metric = 'pressure'`,
    );
    expect(r!.ts.toISOString()).toBe('2026-11-23T09:00:00.250Z');
    expect(r!.received_at.toISOString()).toBe('2026-11-23T09:00:01.750Z');
  });

  it('writes rows of a day without a partition into the default partition instead of failing', async () => {
    const old = Date.UTC(2020, 0, 1);
    await write(sut, [row('temperature', 1, old)]);
    const [r] = await pg.query<{ part: string }>(
      `SELECT tableoid::regclass::text AS part FROM telemetry WHERE ts = to_timestamp($1 / 1000.0)`,
      [old],
    );
    expect(r!.part).toBe('telemetry_default');
    await sut.maintainPartitions(7);
    const [today] = await pg.query<{ part: string }>(
      `SELECT tableoid::regclass::text AS part FROM telemetry WHERE metric = 'humidity'`,
    );
    expect(today!.part).toMatch(/^telemetry_p\d{8}$/);
  });
});
