import {
  machineShare,
  parseMachineTicks,
  parseProcStatCpu,
  ProcessMeter,
  seriesByName,
  servicesOverServers,
} from './proc';

describe('machine share', () => {
  it('says how much of the machine was busy, waiting on the disk and stolen between two readings', () => {
    //                     user nice system idle iowait irq softirq steal guest guest_nice
    const before = parseMachineTicks('cpu  1000 0 500 8000 100 0 50 10 0 0\ncpu0 1 2 3\n')!;
    const after = parseMachineTicks('cpu  1600 100 700 8800 200 50 100 110 0 0\n')!;
    // 2,000 ticks passed: 1,000 running (600 user, 100 nice, 200 system, 50 irq, 50 softirq),
    // 800 idle, 100 waiting on the disk, 100 stolen; the kernel's part 300 of them.
    expect(machineShare(before, after)).toEqual({ busy: 50, kernel: 15, iowait: 5, steal: 5 });
  });

  it('reads nothing from what is not /proc/stat, and no share from an empty window', () => {
    expect(parseMachineTicks(undefined)).toBeUndefined();
    expect(parseMachineTicks('intr 1 2 3')).toBeUndefined();
    expect(parseMachineTicks('cpu  1 2 x')).toBeUndefined();
    const t = parseMachineTicks('cpu  1 2 3 4 5 6 7 8 0 0')!;
    expect(machineShare(t, t)).toBeUndefined();
  });
});

describe("a process's CPU from /proc/<pid>/stat", () => {
  // pid (comm) state ppid pgrp session tty tpgid flags minflt cminflt majflt cmajflt utime stime cutime cstime ...
  const stat = '4321 (node (main) x) S 1 4321 4321 0 -1 4194560 900 0 3 0 700 300 40 20 20 0 11 0 5 0\n';

  it("gives utime + stime, and stime as the kernel's part, past a command with spaces and parentheses", () => {
    expect(parseProcStatCpu(stat)).toEqual({ total: 1000, kernel: 300 });
  });

  it('adds the reaped children (cutime + cstime) when asked', () => {
    expect(parseProcStatCpu(stat, true)).toEqual({ total: 1060, kernel: 320 });
  });
});

describe('services over servers', () => {
  const u = (cpuMs: number) => ({ cpuMs, kernelMs: 0, maxRssMiB: 100 });
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

describe('CPU window by window', () => {
  /** Spins until this process has used `ms` more of CPU (user and system), by its own count. */
  const burn = (ms: number) => {
    const from = process.cpuUsage();
    let x = 0;
    for (;;) {
      for (let i = 0; i < 100_000; i++) x += Math.sqrt(i);
      const used = process.cpuUsage(from);
      if ((used.user + used.system) / 1000 >= ms) return x;
    }
  };

  it("charges each window with the CPU a process took in it, and the whole span stays the meter's", () => {
    const meter = new ProcessMeter({ self: { pid: process.pid } }).begin();
    burn(300);
    const busy = meter.window()['self']!;
    const quiet = meter.window()['self']!;
    const whole = meter.end()['self']!.cpuMs;
    // /proc counts in clock ticks (10 ms): the window that spun took about 300 ms of it.
    expect(busy).toBeGreaterThanOrEqual(250);
    expect(quiet).toBeLessThan(busy / 3);
    expect(whole).toBeGreaterThanOrEqual(busy);
  });

  it('turns readings by window into one series per name, a gap where a window has none', () => {
    const windows: Array<Record<string, number> | undefined> = [
      { demux: 10, 'tsdb-writer': 0 },
      undefined,
      { demux: 3 },
    ];
    expect(seriesByName(windows)).toEqual({
      demux: [10, undefined, 3],
      'tsdb-writer': [0, undefined, undefined],
    });
    expect(seriesByName([])).toEqual({});
  });
});
