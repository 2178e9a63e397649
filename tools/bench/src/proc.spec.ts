import { machineShare, parseMachineTicks, servicesOverServers } from './proc';

describe('machine share', () => {
  it('says how much of the machine was busy, waiting on the disk and stolen between two readings', () => {
    //                     user nice system idle iowait irq softirq steal guest guest_nice
    const before = parseMachineTicks('cpu  1000 0 500 8000 100 0 50 10 0 0\ncpu0 1 2 3\n')!;
    const after = parseMachineTicks('cpu  1600 100 700 8800 200 50 100 110 0 0\n')!;
    // 2,000 ticks passed: 1,000 running (600 user, 100 nice, 200 system, 50 irq, 50 softirq),
    // 800 idle, 100 waiting on the disk, 100 stolen.
    expect(machineShare(before, after)).toEqual({ busy: 50, iowait: 5, steal: 5 });
  });

  it('reads nothing from what is not /proc/stat, and no share from an empty window', () => {
    expect(parseMachineTicks(undefined)).toBeUndefined();
    expect(parseMachineTicks('intr 1 2 3')).toBeUndefined();
    expect(parseMachineTicks('cpu  1 2 x')).toBeUndefined();
    const t = parseMachineTicks('cpu  1 2 3 4 5 6 7 8 0 0')!;
    expect(machineShare(t, t)).toBeUndefined();
  });
});

describe('services over servers', () => {
  const u = (cpuMs: number) => ({ cpuMs, maxRssMiB: 100 });
  const services = ['mqtt-bridge', 'demux', 'tsdb-writer'];

  it("divides our services' CPU by the servers' and leaves the load generator out", () => {
    const usage = {
      'mqtt-bridge': u(450),
      demux: u(370),
      'tsdb-writer': u(210),
      'nats-server': u(900),
      postgres: u(550),
      mosquitto: u(440),
      simulator: u(510),
    };
    expect(servicesOverServers(usage, services)).toBeCloseTo(1030 / 1890, 6);
  });

  it('gives no share when a server is missing or took no CPU', () => {
    expect(
      servicesOverServers({ demux: u(10), 'nats-server': u(5), postgres: u(5) }, services),
    ).toBeUndefined();
    expect(
      servicesOverServers({ demux: u(10), 'nats-server': u(0), postgres: u(0), mosquitto: u(0) }, services),
    ).toBeUndefined();
  });
});
