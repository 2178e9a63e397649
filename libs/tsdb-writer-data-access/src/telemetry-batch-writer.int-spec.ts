import { revertLastMigration, runMigrations } from '@iot/persistence';
import { startPostgres, type PostgresHandle } from '@iot/testing';
import type { NormalizedTelemetry } from '@iot/contracts';
import { Client } from 'pg';
import {
  copyMicros,
  IDEMPOTENT_INSERT,
  ROLLUP_SHARED_LOCK,
  SeriesIds,
  TelemetryBatchWriter,
  TelemetryColumns,
} from './telemetry-batch-writer';

describe('TelemetryBatchWriter (real PostgreSQL)', () => {
  let pg: PostgresHandle;
  let sut: TelemetryBatchWriter;

  beforeAll(async () => {
    pg = await startPostgres({ engine: 'postgres' });
    expect(await runMigrations(pg.url)).toContain('TelemetryStore1763900000000');
    // a second run on the same database applies nothing: migrations are idempotent
    expect(await runMigrations(pg.url)).toEqual([]);
    sut = TelemetryBatchWriter.connect(pg.url);
    // Every bucket counts as materialized, so every write queues its buckets (what a late
    // reading does) and refreshRollup computes them. Closing buckets have their own specs.
    await everyBucketMaterialized();
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
  const write = (writer: TelemetryBatchWriter, messages: NormalizedTelemetry[]) => writer.write(messages);
  /**
   * Writes with a writer that has met no stored row, so it takes COPY (`sut` takes the INSERT
   * for 30 s after the first spec's repeated batch); resolves with the rows COPY wrote.
   */
  const writeByCopy = async (messages: NormalizedTelemetry[]) => {
    const fresh = TelemetryBatchWriter.connect(pg.url);
    try {
      return await fresh.write(messages);
    } finally {
      await fresh.close();
    }
  };
  /** Where the rollup counts as materialized: epoch ms, or 'infinity' (every bucket). */
  const materializedUpto = (at: number | 'infinity') =>
    pg.query(`UPDATE telemetry_5m_state SET materialized_upto = $1::timestamptz`, [
      at === 'infinity' ? at : new Date(at).toISOString(),
    ]);
  const everyBucketMaterialized = () => materializedUpto('infinity');
  /** The start of the current 5-minute bucket (date_bin from 2000-01-01, a multiple of 5 minutes after 1970). */
  const openBucket = () => Math.floor(Date.now() / 300_000) * 300_000;
  const rollupOf = async (device: string) =>
    (
      await pg.query<{ bucket: Date; count: string; sum: number }>(
        `SELECT bucket, count::text, sum FROM telemetry_5m WHERE device_id = $1 ORDER BY bucket, metric`,
        [device],
      )
    ).map((r) => [r.bucket.getTime(), r.count, r.sum]);

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
    await sut.refreshRollup();
    const rollup = await pg.query<{ count: string; sum: number }>(
      `SELECT sum(count)::text AS count, sum(sum) AS sum FROM telemetry_5m WHERE metric = 'temperature'`,
    );
    expect(rollup).toEqual([{ count: '2', sum: 42 }]);
  });

  it('stores the new rows of a batch that also holds stored ones, and a row repeated within one batch once', async () => {
    // A writer of its own: its first write is a COPY, which must fail on the stored
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
    await sut.refreshRollup();
    const [rollup] = await pg.query<{ count: string; sum: number }>(
      `SELECT sum(count)::text AS count, sum(sum) AS sum FROM telemetry_5m WHERE metric = 'co2'`,
    );
    expect(rollup).toEqual({ count: '3', sum: 1230 });
  });

  it('numbers a series once when writers meet it at the same moment, and each stores its points under that number', async () => {
    const writers = [0, 1, 2].map(() => TelemetryBatchWriter.connect(pg.url));
    const t = now + 120_000;
    // 40 devices x 2 metrics new to every writer, each writer its own timestamps.
    const batch = (w: number) =>
      Array.from({ length: 40 }, (_, d) => ({
        ...row('series-a', d, t + w),
        device: `demo-series-${d}`,
        points: [
          { metric: 'series-a', value: d, unit: 'Cel', quality: 'good' as const },
          { metric: 'series-b', value: 100 + d, unit: '%', quality: 'good' as const },
        ],
      }));
    try {
      expect(await Promise.all(writers.map((w, i) => w.write(batch(i))))).toEqual([80, 80, 80]);
    } finally {
      await Promise.all(writers.map((w) => w.close()));
    }
    const [series] = await pg.query<{ n: string; distinct_keys: string }>(
      `SELECT count(*)::text AS n, count(DISTINCT (tenant_id, device_id, metric, unit))::text AS distinct_keys
         FROM telemetry_series WHERE device_id LIKE 'demo-series-%'`,
    );
    expect(series).toEqual({ n: '80', distinct_keys: '80' });
    // Every point under its own series: the view gives back each device's own values and units.
    const rows = await pg.query<{ device_id: string; metric: string; unit: string; n: string; sum: number }>(
      `SELECT device_id, metric, unit, count(*)::text AS n, sum(value) AS sum FROM telemetry
        WHERE device_id IN ('demo-series-0', 'demo-series-39') GROUP BY 1, 2, 3 ORDER BY 1, 2`,
    );
    expect(rows).toEqual([
      { device_id: 'demo-series-0', metric: 'series-a', unit: 'Cel', n: '3', sum: 0 },
      { device_id: 'demo-series-0', metric: 'series-b', unit: '%', n: '3', sum: 300 },
      { device_id: 'demo-series-39', metric: 'series-a', unit: 'Cel', n: '3', sum: 117 },
      { device_id: 'demo-series-39', metric: 'series-b', unit: '%', n: '3', sum: 417 },
    ]);
  });

  it('numbers the series of a write after its cache of series started again, the same numbers as before', async () => {
    const ids = new SeriesIds(3);
    const client = new Client({ connectionString: pg.url });
    await client.connect();
    try {
      const device = (d: string) => [
        { ...row('cache-a', 1), device: d },
        { ...row('cache-b', 2), device: d },
      ];
      const first = await ids.resolve(client, device('demo-cache-1'));
      expect(first[0]).toBe(ids.id('demo', 'demo-cache-1', 'cache-a', 'Cel'));
      expect(first[1]).toBe(ids.id('demo', 'demo-cache-1', 'cache-b', 'Cel'));
      expect(first[0]).not.toBe(first[1]);
      await ids.resolve(client, device('demo-cache-2'));
      // Four series held, more than 3: the next write starts the cache again, and still
      // finds every series it needs, under the numbers they had.
      expect(await ids.resolve(client, device('demo-cache-1'))).toEqual(first);
      expect(ids.id('demo', 'demo-cache-1', 'cache-a', 'Cel')).toBe(first[0]);
      // Points of series new and held in one write: each has its own series' number.
      const mixed = await ids.resolve(client, [...device('demo-cache-3'), ...device('demo-cache-1')]);
      expect([...mixed.subarray(2)]).toEqual([...first]);
      expect(new Set(mixed).size).toBe(4);
      expect(mixed[1]).toBe(ids.id('demo', 'demo-cache-3', 'cache-b', 'Cel'));
      // One metric in two units is two series; the one met before keeps its number.
      const units = await ids.resolve(client, [
        {
          ...row('cache-a', 1),
          device: 'demo-cache-3',
          points: [
            { metric: 'cache-a', value: 1, unit: 'Cel', quality: 'good' },
            { metric: 'cache-a', value: 2, unit: '%', quality: 'good' },
          ],
        },
      ]);
      expect(units[0]).toBe(mixed[0]);
      expect(units[1]).not.toBe(units[0]);
      expect(ids.id('demo', 'demo-cache-3', 'cache-a', '%')).toBe(units[1]);
      expect(ids.id('demo', 'demo-cache-3', 'cache-a', 'Cel')).toBe(units[0]);
      expect(() => ids.id('demo', 'demo-cache-2', 'cache-a', 'Cel')).toThrow('not resolved');
    } finally {
      await client.end();
    }
  });

  it('stores texts with quotes, backslashes, tabs, line breaks, commas, braces and non-ASCII as sent, and every point of a message', async () => {
    const odd = [
      'we"ird\\name',
      'a,b {c}',
      'NULL',
      '\\N',
      '',
      ' spaced ',
      'µS/cm²',
      'tab\there',
      'two\nlines\r',
      'ü€'.repeat(150), // 750 bytes twice in a row: more than the body's first allocation
    ];
    const ts = now + 120_000;
    const written = await writeByCopy([
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
    expect(written).toBe(odd.length);
    const rows = await pg.query<{ metric: string; unit: string; value: number; quality: string }>(
      `SELECT metric, unit, value, quality FROM telemetry WHERE device_id = 'demo-odd' ORDER BY value`,
    );
    expect(rows).toEqual(
      odd.map((metric, i) => ({ metric, unit: metric, value: i + 0.5, quality: 'clamped' })),
    );
  });

  it('updates the rollup in place: a bucket computed again leaves its rows on their pages', async () => {
    // 300 series in one 5-minute bucket of their own fill several pages of telemetry_5m. With
    // room left on each page, updating them writes each new version beside the old (a HOT
    // update: no new index entry); on full pages every update moves the row elsewhere.
    const ts = openBucket() - 3_600_000;
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
    await sut.refreshRollup();
    const before = await pages();
    // Late readings into the same bucket: it is computed again.
    await write(sut, batchAt(ts + 1000));
    await sut.refreshRollup();
    const after = await pages();
    expect(after.size).toBe(metrics.length);
    const moved = metrics.filter((m) => before.get(m) !== after.get(m));
    expect(moved.length).toBeLessThan(metrics.length / 10);
    const [sum] = await pg.query<{ count: string }>(
      `SELECT sum(count)::text AS count FROM telemetry_5m WHERE device_id = 'demo-hot'`,
    );
    expect(sum!.count).toBe(String(2 * metrics.length));
  });

  it('stores by COPY the times of 1970 to 2099 to the millisecond, before 2000 too', async () => {
    // Before 2000 the microseconds from PostgreSQL's epoch are negative: COPY's eight bytes
    // must carry them as such.
    const times = [
      '1970-01-01T00:00:00.000Z',
      '1975-06-01T12:34:56.789Z',
      '1999-12-31T23:59:59.999Z',
      '2000-01-01T00:00:00.000Z',
      '2026-11-23T09:00:00.001Z',
      '2099-12-31T23:59:59.998Z', // received 1 ms later: the last millisecond COPY takes
    ];
    const messages = times.map((iso, i) => ({
      ...row('epoch', i, Date.parse(iso)),
      device: 'demo-epoch',
      receivedAt: Date.parse(iso) + 1,
    }));
    expect(await writeByCopy(messages)).toBe(times.length);
    const rows = await pg.query<{ ts: Date; received_at: Date }>(
      `SELECT ts, received_at FROM telemetry WHERE device_id = 'demo-epoch' ORDER BY ts`,
    );
    expect(rows.map((r) => r.ts.toISOString())).toEqual(times);
    expect(rows.map((r) => r.received_at.getTime() - r.ts.getTime())).toEqual(times.map(() => 1));
    // Out of the default partition, which a later spec counts.
    await pg.query(
      `DELETE FROM telemetry_points WHERE series_id IN (SELECT series_id FROM telemetry_series WHERE device_id = 'demo-epoch')`,
    );
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

  it('writes rows of a day without a partition into the default partition instead of failing, and expires them', async () => {
    const old = Date.UTC(2020, 0, 1);
    await write(sut, [row('temperature', 1, old)]);
    const [r] = await pg.query<{ part: string }>(
      `SELECT tableoid::regclass::text AS part FROM telemetry_points WHERE ts = to_timestamp($1 / 1000.0)`,
      [old],
    );
    expect(r!.part).toBe('telemetry_points_default');
    // A clock 20 days ahead, past the partitions made ahead: the default partition too.
    const ahead = Date.now() + 20 * 86_400_000;
    await write(sut, [row('temperature', 2, ahead)]);
    await sut.maintainPartitions(7);
    const [today] = await pg.query<{ part: string }>(
      `SELECT p.tableoid::regclass::text AS part FROM telemetry_points p JOIN telemetry_series s USING (series_id) WHERE s.metric = 'humidity'`,
    );
    expect(today!.part).toMatch(/^telemetry_points_p\d{8}$/);
    // Retention deletes the default partition's rows past the raw window (7 days), as it
    // drops whole daily partitions, and keeps the others.
    const kept = await pg.query<{ ts: Date }>(`SELECT ts FROM telemetry_points_default ORDER BY ts`);
    expect(kept.map((k) => k.ts.getTime())).toEqual([ahead]);
  });

  it('stores by COPY the very timestamps the INSERT stores, to the microsecond, so a row sent both ways is one row', async () => {
    // Whole milliseconds, fractions of them (SenML times), and the ends of the range COPY takes.
    const base = Date.UTC(2026, 10, 23);
    const sample = [0, 1, 999.9995, Date.UTC(2099, 11, 31, 23, 59, 59, 999), base + 0.0005, base + 0.0015];
    for (let i = 0; i < 3000; i++)
      sample.push(base + Math.floor(Math.random() * 1e10) + Math.floor(Math.random() * 1e4) / 1e4);
    // EXTRACT gives numeric, exact to the microsecond: the stored value as COPY's binary sends it.
    const [r] = await pg.query<{ differ: string }>(
      `SELECT count(*)::text AS differ FROM unnest($1::float8[], $2::bigint[]) AS x(ms, us)
       WHERE (extract(epoch FROM to_timestamp(ms / 1000.0) - timestamptz '2000-01-01Z') * 1000000)::bigint
             IS DISTINCT FROM us`,
      [sample, sample.map((ms) => String(copyMicros(ms)))],
    );
    expect(r!.differ).toBe('0');
    expect([-1, Date.UTC(2100, 0, 1), Date.UTC(1969, 0, 1)].map(copyMicros)).toEqual([
      undefined,
      undefined,
      undefined,
    ]);
  });

  it('finds a row the INSERT stored when the same row comes again by COPY, fractional milliseconds and all', async () => {
    const t = Date.UTC(2026, 10, 22, 10, 0, 0) + 0.1235;
    const points = (n: number) =>
      Array.from({ length: n }, (_, i) => ({ ...row('frac', i, t + i * 1.3333), device: 'demo-frac' }));
    // A point of 1960 is outside what COPY takes: this batch goes by INSERT.
    const first = TelemetryBatchWriter.connect(pg.url);
    const second = TelemetryBatchWriter.connect(pg.url);
    try {
      await write(first, [...points(20), { ...row('frac', 99, Date.UTC(1960, 0, 1)), device: 'demo-frac' }]);
      // A fresh writer sends the first 20 again, and 5 new ones, by COPY: it must meet the stored rows.
      await write(second, points(25));
    } finally {
      await first.close();
      await second.close();
    }
    const [r] = await pg.query<{ n: string; distinct_ts: string }>(
      `SELECT count(*)::text AS n, count(DISTINCT ts)::text AS distinct_ts FROM telemetry WHERE device_id = 'demo-frac'`,
    );
    expect(r).toEqual({ n: '26', distinct_ts: '26' });
  });

  it('stores the rest of a batch when PostgreSQL refuses one message of it, and names that one', async () => {
    const t = Date.now() - 60_000;
    const batch = Array.from({ length: 40 }, (_, i) => ({ ...row('nul', i, t + i), device: 'demo-nul' }));
    // A NUL byte, which no PostgreSQL text may hold: the row fails however often it is sent.
    batch[27] = {
      ...batch[27]!,
      points: [{ metric: 'nul', value: 27, unit: 'bad\u0000unit', quality: 'good' }],
    };
    await expect(sut.write(batch)).rejects.toThrow(/0x00/);
    const refused = await sut.writeIsolating(batch);
    expect([...refused.keys()]).toEqual([27]);
    expect(refused.get(27)!.code).toBe('22021');
    const [r] = await pg.query<{ n: string; refused: string }>(
      `SELECT count(*)::text AS n, count(*) FILTER (WHERE value = 27)::text AS refused
       FROM telemetry WHERE device_id = 'demo-nul'`,
    );
    expect(r).toEqual({ n: '39', refused: '0' });
    // Sent again (a redelivery of the batch), nothing changes and the same one is refused.
    expect([...(await sut.writeIsolating(batch)).keys()]).toEqual([27]);
    const [again] = await pg.query<{ n: string }>(
      `SELECT count(*)::text AS n FROM telemetry WHERE device_id = 'demo-nul'`,
    );
    expect(again!.n).toBe('39');
  });

  it('keeps the rollup equal to the rows it sums, bucket by bucket, whichever way they were written', async () => {
    // Points on both sides of a bucket edge, one within half a microsecond below it (stored on it).
    const edge = Math.floor(Date.now() / 300_000) * 300_000 - 7_200_000;
    const fresh = TelemetryBatchWriter.connect(pg.url);
    try {
      await write(
        fresh,
        [edge - 1, edge - 0.0004, edge + 1, edge + 299_999.5].map((ts, i) => ({
          ...row('edge', i + 1.25, ts),
          device: 'demo-edge',
        })),
      );
    } finally {
      await fresh.close();
    }
    await sut.refreshRollup();
    const differences = await pg.query(
      `WITH agg AS (
         SELECT tenant_id, device_id, metric, date_bin('5 minutes', ts, timestamptz '2000-01-01') AS bucket,
                count(*) AS count, sum(value) AS sum, min(value) AS min, max(value) AS max
         FROM telemetry GROUP BY 1, 2, 3, 4)
       SELECT tenant_id, device_id, metric, bucket, a.count AS rows, r.count AS rollup_count, a.sum AS rows_sum,
              r.sum AS rollup_sum
       FROM agg a FULL JOIN telemetry_5m r USING (tenant_id, device_id, metric, bucket)
       -- Within the raw window: retention deletes older rows and keeps their rollup for a year.
       WHERE bucket >= now() - interval '7 days' AND (a.count IS DISTINCT FROM r.count OR a.min IS DISTINCT FROM r.min OR a.max IS DISTINCT FROM r.max
          OR abs(a.sum - r.sum) > 1e-9 * greatest(abs(a.sum), 1))`,
    );
    expect(differences).toEqual([]);
    const edges = await pg.query<{ bucket: Date; count: string }>(
      `SELECT bucket, count::text FROM telemetry_5m WHERE device_id = 'demo-edge' ORDER BY bucket`,
    );
    expect(edges.map((e) => [e.bucket.getTime(), e.count])).toEqual([
      [edge - 300_000, '1'],
      [edge, '3'],
    ]);
  });

  it('materializes a bucket once it has closed, and the open one not yet', async () => {
    const open = openBucket();
    // Materialized up to half an hour ago: the buckets since then have not been computed.
    await materializedUpto(open - 1_800_000);
    try {
      const closed = open - 900_000;
      await write(sut, [
        { ...row('closing', 1, closed + 10), device: 'demo-close' },
        { ...row('closing', 2, closed + 20), device: 'demo-close' },
        { ...row('closing', 5, open + 10), device: 'demo-close' },
      ]);
      // Neither bucket was materialized when written: nothing queued, nothing computed yet.
      expect(await rollupOf('demo-close')).toEqual([]);
      await sut.refreshRollup();
      expect(await rollupOf('demo-close')).toEqual([[closed, '2', 3]]);
      const [state] = await pg.query<{ upto: Date }>(
        `SELECT materialized_upto AS upto FROM telemetry_5m_state`,
      );
      expect(state!.upto.getTime()).toBeGreaterThan(closed);
      expect(state!.upto.getTime()).toBeLessThanOrEqual(open);
      // A second refresh finds nothing new to do.
      expect(await sut.refreshRollup()).toBe(0);
    } finally {
      await everyBucketMaterialized();
    }
  });

  it('does not compute a bucket while a batch writing into it is open, and computes it after its commit', async () => {
    const ts = openBucket() - 7_200_000;
    const late = (value: number, at: number) => ({ ...row('open-batch', value, at), device: 'demo-open' });
    await write(sut, [late(1, ts)]);
    await sut.refreshRollup();
    expect(await rollupOf('demo-open')).toEqual([[ts, '1', 1]]);
    // A batch of the writer's own statement, held open: it has queued the bucket, locked.
    const batch = new Client({ connectionString: pg.url });
    await batch.connect();
    try {
      const ids = await sut.series.resolve(batch, [late(2, ts + 1)]);
      await batch.query('BEGIN');
      await batch.query(
        IDEMPOTENT_INSERT['postgres-partitions'],
        TelemetryColumns.of([late(2, ts + 1)], ids).params(),
      );
      await sut.refreshRollup();
      expect(await rollupOf('demo-open')).toEqual([[ts, '1', 1]]);
      await batch.query('COMMIT');
    } finally {
      await batch.end();
    }
    await sut.refreshRollup();
    expect(await rollupOf('demo-open')).toEqual([[ts, '2', 3]]);
  });

  it('waits for the batches that read where materializing stood before moving it on', async () => {
    const open = openBucket();
    const ts = open - 900_000;
    await materializedUpto(open - 1_800_000);
    const batch = new Client({ connectionString: pg.url });
    await batch.connect();
    try {
      const waiting = [{ ...row('waiting', 7, ts), device: 'demo-wait' }];
      const ids = await sut.series.resolve(batch, waiting);
      // Written while its bucket was not materialized, so not queued; still open.
      await batch.query(`BEGIN;${ROLLUP_SHARED_LOCK}`);
      await batch.query(IDEMPOTENT_INSERT['postgres-partitions'], TelemetryColumns.of(waiting, ids).params());
      let done = false;
      const refreshed = sut.refreshRollup().then(() => (done = true));
      await new Promise((r) => setTimeout(r, 300));
      expect(done).toBe(false);
      await batch.query('COMMIT');
      await refreshed;
    } finally {
      await batch.end();
      await everyBucketMaterialized();
    }
    // Had it not waited, the bucket would have been computed without the row, and not again.
    expect(await rollupOf('demo-wait')).toEqual([[ts, '1', 7]]);
  });

  it('computes a bucket while autovacuum holds its partition, without waiting for it', async () => {
    const ts = openBucket() - 3_000_000;
    await write(sut, [{ ...row('vacuumed', 4, ts), device: 'demo-vacuum' }]);
    // Autovacuum's lock on the partition (the one BRIN summarizing takes too), held open.
    const vacuum = new Client({ connectionString: pg.url });
    await vacuum.connect();
    try {
      const [{ part }] = await pg.query<{ part: string }>(
        `SELECT p.tableoid::regclass::text AS part FROM telemetry_points p JOIN telemetry_series s USING (series_id) WHERE s.device_id = 'demo-vacuum'`,
      );
      await vacuum.query('BEGIN');
      await vacuum.query(`LOCK TABLE ${part} IN SHARE UPDATE EXCLUSIVE MODE`);
      await sut.refreshRollup();
      expect(await rollupOf('demo-vacuum')).toEqual([[ts, '1', 4]]);
    } finally {
      await vacuum.query('ROLLBACK').catch(() => undefined);
      await vacuum.end();
    }
  });

  it('keeps its connection through a lull longer than ten seconds: the next batch meets the same backend', async () => {
    const url = new URL(pg.url);
    url.searchParams.set('application_name', 'writer-lull');
    const writer = TelemetryBatchWriter.connect(url.toString());
    const backends = () =>
      pg.query<{ pid: number; started: string }>(
        `SELECT pid, backend_start::text AS started FROM pg_stat_activity WHERE application_name = 'writer-lull'`,
      );
    try {
      await writer.write([{ ...row('lull', 1), device: 'lull-0001' }]);
      const before = await backends();
      expect(before).toHaveLength(1);
      // pg-pool's default would have closed it after 10 s idle.
      await new Promise((r) => setTimeout(r, 11_000));
      expect(await backends()).toEqual(before);
      await writer.write([{ ...row('lull', 2, now + 1000), device: 'lull-0001' }]);
      expect(await backends()).toEqual(before);
    } finally {
      await writer.close();
    }
  }, 30_000);
});

describe('migration SeriesKey1765000000000 (real PostgreSQL)', () => {
  let pg: PostgresHandle;

  beforeAll(async () => {
    pg = await startPostgres({ engine: 'postgres' });
  });
  afterAll(async () => {
    await pg?.stop();
  });

  it('keeps the rows stored before it readable, in the rollup too, and gives back the rows stored after it when reverted', async () => {
    await runMigrations(pg.url);
    await revertLastMigration(pg.url);
    // The table as it was: rows of a device stored before the migration, one of them far back.
    const bucket = Math.floor((Date.now() - 3_600_000) / 300_000) * 300_000;
    await pg.query(
      `INSERT INTO telemetry (tenant_id, device_id, metric, ts, value, unit, quality, received_at)
       VALUES ('demo', 'old-1', 'temperature', to_timestamp($1 / 1000.0), 20, 'Cel', 'good', now()),
              ('demo', 'old-1', 'temperature', to_timestamp($1 / 1000.0 + 60), 22, 'Cel', 'good', now()),
              ('demo', 'old-1', 'temperature', timestamptz '2020-01-01', 1, 'Cel', 'good', now())`,
      [bucket],
    );
    expect(await runMigrations(pg.url)).toEqual(['SeriesKey1765000000000']);
    const writer = TelemetryBatchWriter.connect(pg.url);
    try {
      // The same device after the migration, in the same 5-minute bucket.
      await writer.write([
        {
          tenant: 'demo',
          device: 'old-1',
          messageId: 'after-1',
          ts: bucket + 120_000,
          receivedAt: bucket + 120_005,
          points: [{ metric: 'temperature', value: 24, unit: 'Cel', quality: 'good' }],
        },
      ]);
      const values = await pg.query<{ value: number }>(
        `SELECT value FROM telemetry WHERE device_id = 'old-1' ORDER BY ts`,
      );
      expect(values.map((v) => v.value)).toEqual([1, 20, 22, 24]);
      // The bucket holds rows of both tables: its rollup counts them all.
      await pg.query(`UPDATE telemetry_5m_state SET materialized_upto = 'infinity'`);
      await pg.query(
        `INSERT INTO telemetry_5m_dirty (bucket) VALUES (to_timestamp($1 / 1000.0)) ON CONFLICT DO NOTHING`,
        [bucket],
      );
      await writer.refreshRollup();
      expect(
        await pg.query(
          `SELECT count::text, sum FROM telemetry_5m WHERE device_id = 'old-1' AND bucket = to_timestamp($1 / 1000.0)`,
          [bucket],
        ),
      ).toEqual([{ count: '3', sum: 66 }]);
      // Retention reaches the old table: its row of 2020 goes.
      await writer.maintainPartitions(7);
      expect(
        (await pg.query(`SELECT value FROM telemetry WHERE device_id = 'old-1' ORDER BY ts`)).length,
      ).toBe(3);
    } finally {
      await writer.close();
    }
    // Reverted, the table holds the rows stored since as well.
    await revertLastMigration(pg.url);
    const back = await pg.query<{ value: number }>(
      `SELECT value FROM telemetry WHERE device_id = 'old-1' ORDER BY ts`,
    );
    expect(back.map((v) => v.value)).toEqual([20, 22, 24]);
  });
});
