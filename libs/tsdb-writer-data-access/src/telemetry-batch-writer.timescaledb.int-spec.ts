import { revertLastMigration, runMigrations } from '@iot/persistence';
import { startTimescaleDb, type TimescaleDbHandle } from '@iot/testing';
import type { NormalizedTelemetry } from '@iot/contracts';
import { TelemetryBatchWriter } from './telemetry-batch-writer';

/**
 * The writer and the telemetry migrations on TimescaleDB, the engine of docker-compose and
 * k8s (the plain PostgreSQL store has its own specs, telemetry-batch-writer.int-spec.ts).
 * TimescaleDB has no Debian package: where a Docker engine answers (GitHub's CI) it is the
 * image of docker-compose, elsewhere PGlite with TimescaleDB in this process (libs/testing,
 * embedded-timescaledb.ts), where connections take turns on one session and the policies'
 * jobs never run (the spec refreshes the continuous aggregates itself, as their job would).
 */
describe('TelemetryBatchWriter on TimescaleDB', () => {
  let pg: TimescaleDbHandle;
  let sut: TelemetryBatchWriter;

  beforeAll(async () => {
    pg = await startTimescaleDb();
    process.stdout.write(`TimescaleDB (${pg.kind}): ${pg.version}\n`);
    expect(await runMigrations(pg.url)).toContain('SeriesKey1765000000000');
    sut = TelemetryBatchWriter.connect(pg.url);
    expect(await sut.detectEngine()).toBe('timescaledb');
  });
  afterAll(async () => {
    await sut?.close();
    await pg?.stop();
  });

  const hour = Date.now() - 3_600_000;
  const bucket = Math.floor(hour / 300_000) * 300_000;
  const message = (device: string, i: number, value: number): NormalizedTelemetry => ({
    tenant: 'demo',
    device,
    messageId: `${device}-${i}`,
    ts: bucket + i * 1_000,
    receivedAt: bucket + i * 1_000 + 5,
    points: [
      { metric: 'temperature', value, unit: 'Cel', quality: 'good' },
      { metric: 'humidity', value: value * 2, unit: '%', quality: 'clamped' },
    ],
  });
  /** The 5-minute rollup, brought up to date as TimescaleDB's policy would (every minute). */
  const rollup = async (device: string) => {
    await pg.query(`CALL refresh_continuous_aggregate('telemetry_5m_series', NULL, NULL)`);
    return pg.query<{ metric: string; count: string; sum: number }>(
      `SELECT metric, count::text, sum FROM telemetry_5m WHERE device_id = $1 AND bucket = to_timestamp($2 / 1000.0) ORDER BY metric`,
      [device, bucket],
    );
  };

  it('keeps the points in a hypertable with compression and retention, and the rollup in a continuous aggregate', async () => {
    const tables = await pg.query<{ hypertable_name: string }>(
      `SELECT hypertable_name FROM timescaledb_information.hypertables WHERE hypertable_schema = 'public' ORDER BY 1`,
    );
    expect(tables.map((t) => t.hypertable_name)).toEqual(['telemetry_points', 'telemetry_v1']);
    // The policies of the new points and of their rollup. A continuous aggregate's jobs are
    // listed under its view's name (TimescaleDB 2.23), in some versions under its
    // materialization hypertable's.
    const jobs = await pg.query<{ proc_name: string }>(
      `SELECT proc_name FROM timescaledb_information.jobs
        WHERE hypertable_name = 'telemetry_points'
           OR hypertable_name IN (SELECT unnest(ARRAY[view_name, materialization_hypertable_name])
                                    FROM timescaledb_information.continuous_aggregates
                                   WHERE view_name = 'telemetry_5m_series')
        ORDER BY 1`,
    );
    // Compression's job is named for the columnstore in later TimescaleDB versions.
    const names = jobs.map((j) => j.proc_name);
    expect(names.filter((n) => /compression|columnstore/.test(n))).toHaveLength(1);
    expect(names.filter((n) => n === 'policy_refresh_continuous_aggregate')).toHaveLength(1);
    expect(names.filter((n) => n === 'policy_retention')).toHaveLength(2);
    const caggs = await pg.query<{ view_name: string }>(
      `SELECT view_name FROM timescaledb_information.continuous_aggregates ORDER BY 1`,
    );
    expect(caggs.map((c) => c.view_name)).toEqual(['telemetry_5m_series', 'telemetry_5m_v1']);
  });

  it('stores every point once, written again or not, and reads it back through the telemetry view', async () => {
    const batch = [message('ts-once', 1, 20), message('ts-once', 2, 22)];
    expect(await sut.write(batch)).toBe(4);
    // A redelivery of the whole batch, then one that holds a new message besides.
    expect(await sut.write(batch)).toBe(0);
    expect(await sut.write([...batch, message('ts-once', 3, 24)])).toBe(2);
    const rows = await pg.query<{ metric: string; value: number; unit: string; quality: string }>(
      `SELECT metric, value, unit, quality FROM telemetry WHERE device_id = 'ts-once' ORDER BY metric, ts`,
    );
    expect(rows).toEqual([
      { metric: 'humidity', value: 40, unit: '%', quality: 'clamped' },
      { metric: 'humidity', value: 44, unit: '%', quality: 'clamped' },
      { metric: 'humidity', value: 48, unit: '%', quality: 'clamped' },
      { metric: 'temperature', value: 20, unit: 'Cel', quality: 'good' },
      { metric: 'temperature', value: 22, unit: 'Cel', quality: 'good' },
      { metric: 'temperature', value: 24, unit: 'Cel', quality: 'good' },
    ]);
    expect(await rollup('ts-once')).toEqual([
      { metric: 'humidity', count: '3', sum: 132 },
      { metric: 'temperature', count: '3', sum: 66 },
    ]);
  });

  it('stores the rest of a batch when the database refuses one message of it, and names that one', async () => {
    const batch = Array.from({ length: 12 }, (_, i) => message('ts-nul', 10 + i, i));
    // A NUL byte, which no PostgreSQL text may hold: the message fails however often it is sent.
    batch[7] = {
      ...batch[7]!,
      points: [{ metric: 'nul', value: 7, unit: 'bad\u0000unit', quality: 'good' }],
    };
    const refused = await sut.writeIsolating(batch);
    expect([...refused.keys()]).toEqual([7]);
    expect(refused.get(7)!.code).toBe('22021');
    // Sent again (a redelivery), the same one is refused and nothing is stored twice.
    expect([...(await sut.writeIsolating(batch)).keys()]).toEqual([7]);
    const [r] = await pg.query<{ n: string }>(
      `SELECT count(*)::text AS n FROM telemetry WHERE device_id = 'ts-nul'`,
    );
    expect(r!.n).toBe('22');
  });

  it('reads the rows stored before the series key through the views, and gives back the rows stored after it when reverted', async () => {
    try {
      await revertLastMigration(pg.url);
      await pg.query(
        `INSERT INTO telemetry (tenant_id, device_id, metric, ts, value, unit, quality, received_at)
         VALUES ('demo', 'ts-old', 'temperature', to_timestamp($1 / 1000.0), 10, 'Cel', 'good', now())`,
        [bucket],
      );
      expect(await runMigrations(pg.url)).toEqual(['SeriesKey1765000000000']);
      const writer = TelemetryBatchWriter.connect(pg.url);
      try {
        await writer.write([message('ts-old', 5, 30)]);
      } finally {
        await writer.close();
      }
      const values = await pg.query<{ value: number }>(
        `SELECT value FROM telemetry WHERE device_id = 'ts-old' AND metric = 'temperature' ORDER BY ts`,
      );
      expect(values.map((v) => v.value)).toEqual([10, 30]);
      // The old continuous aggregate and the new one, summed per bucket by the telemetry_5m view.
      await pg.query(`CALL refresh_continuous_aggregate('telemetry_5m_v1', NULL, NULL)`);
      expect((await rollup('ts-old')).find((r) => r.metric === 'temperature')).toEqual({
        metric: 'temperature',
        count: '2',
        sum: 40,
      });
      await revertLastMigration(pg.url);
      const back = await pg.query<{ value: number }>(
        `SELECT value FROM telemetry WHERE device_id = 'ts-old' AND metric = 'temperature' ORDER BY ts`,
      );
      expect(back.map((v) => v.value)).toEqual([10, 30]);
    } finally {
      // Applied again for any spec after this one.
      await runMigrations(pg.url);
    }
  });
});
