import { Client } from 'pg';
import { percentile } from './histogram';
import { BENCH_METRICS } from './load';
import type { BenchServers } from './servers';

export interface QueryRun {
  rows: number;
  fillMs: number;
  history: { p50Ms: number; p99Ms: number; rowsPerQuery: number };
  aggregates: { p50Ms: number; p99Ms: number; rowsPerQuery: number };
}

/**
 * Fills the table with `rows` points (100 devices, 5 metrics, evenly over the last 30 days)
 * and its rollup, as the writer would have left them; then times the two queries users run:
 * a device's history over 24 hours and a metric's 5-minute aggregates over 30 days.
 */
export async function runQueries(s: BenchServers, rows: number, runs = 200): Promise<QueryRun> {
  const devices = 100;
  const perSeries = Math.ceil(rows / (devices * BENCH_METRICS.length));
  const stepS = Math.floor((30 * 86_400) / perSeries);
  const c = new Client({ connectionString: s.pg.url });
  await c.connect();
  try {
    const t0 = performance.now();
    // Generated in the database: the fill is setup, not what is measured.
    await c.query(
      `INSERT INTO telemetry_series (tenant_id, device_id, metric, unit)
       SELECT 'query', 'q-' || lpad(d::text, 4, '0'), m, '1'
         FROM generate_series(1, ${devices}) AS d, unnest($1::text[]) AS m
       ON CONFLICT DO NOTHING`,
      [BENCH_METRICS],
    );
    await c.query(
      `INSERT INTO telemetry_points (series_id, ts, value, quality, received_at)
       SELECT s.series_id, now() - make_interval(secs => i * $2::int),
              20 + 5 * sin(i / 50.0) + substr(s.device_id, 3)::int % 7, 'good', now()
         FROM generate_series(1, $1::int) AS i, telemetry_series s WHERE s.tenant_id = 'query'
       ON CONFLICT DO NOTHING`,
      [perSeries, stepS],
    );
    await c.query(
      `INSERT INTO telemetry_5m (tenant_id, device_id, metric, bucket, count, sum, min, max)
       SELECT tenant_id, device_id, metric, date_bin('5 minutes', ts, timestamptz '2000-01-01'),
              count(*), sum(value), min(value), max(value)
         FROM telemetry WHERE tenant_id = 'query' GROUP BY 1, 2, 3, 4
       ON CONFLICT DO NOTHING`,
    );
    await c.query('ANALYZE telemetry_points, telemetry_series');
    await c.query('ANALYZE telemetry_5m');
    const fillMs = performance.now() - t0;
    const [{ n }] = (await c.query(`SELECT count(*)::int AS n FROM telemetry WHERE tenant_id = 'query'`))
      .rows;

    const time = async (sql: string, params: () => unknown[]) => {
      const ms: number[] = [];
      let total = 0;
      for (let i = 0; i < runs; i++) {
        const t = performance.now();
        const res = await c.query(sql, params());
        ms.push(performance.now() - t);
        total += res.rowCount ?? 0;
      }
      ms.sort((a, b) => a - b);
      return {
        p50Ms: percentile(ms, 0.5)!,
        p99Ms: percentile(ms, 0.99)!,
        rowsPerQuery: Math.round(total / runs),
      };
    };
    const device = () => `q-${String(1 + Math.floor(Math.random() * devices)).padStart(4, '0')}`;
    const metric = () => BENCH_METRICS[Math.floor(Math.random() * BENCH_METRICS.length)]!;
    const history = await time(
      `SELECT metric, ts, value, unit, quality FROM telemetry
        WHERE tenant_id = 'query' AND device_id = $1 AND ts >= now() - interval '24 hours'
        ORDER BY metric, ts`,
      () => [device()],
    );
    const aggregates = await time(
      `SELECT bucket, sum / count AS avg, min, max, count FROM telemetry_5m
        WHERE tenant_id = 'query' AND device_id = $1 AND metric = $2 AND bucket >= now() - interval '30 days'
        ORDER BY bucket`,
      () => [device(), metric()],
    );
    return { rows: n, fillMs, history, aggregates };
  } finally {
    await c.end();
  }
}
