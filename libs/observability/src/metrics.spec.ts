import { setTimeout as sleep } from 'node:timers/promises';
import { IotMetrics } from './metrics';

function gauge(text: string, name: string): number {
  const m = new RegExp(`^${name}\\{[^}]*\\} (\\S+)$`, 'm').exec(text);
  if (!m) throw new Error(`${name} not in the metrics text`);
  return Number(m[1]);
}

describe('IotMetrics', () => {
  it('shows a stall of the event loop in nodejs_eventloop_lag_max_seconds, sampled less often than by default', async () => {
    const metrics = new IotMetrics('stall-test');
    await sleep(250); // the sampler has started
    const until = Date.now() + 400;
    while (Date.now() < until) {
      /* a handler that blocks the loop for 400 ms */
    }
    await sleep(250);
    const text = await metrics.metricsText();
    expect(gauge(text, 'nodejs_eventloop_lag_max_seconds')).toBeGreaterThan(0.25);
    // Each sample is the time between two firings of a timer that wakes the service: about
    // 100 ms apart, not prom-client's default 10 ms.
    expect(gauge(text, 'nodejs_eventloop_lag_min_seconds')).toBeGreaterThan(0.05);
  });
});
