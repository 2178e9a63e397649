import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';

let ticks: number | undefined;
function clockTicks(): number {
  if (ticks === undefined) {
    try {
      ticks = Number(execFileSync('getconf', ['CLK_TCK']).toString().trim()) || 100;
    } catch {
      ticks = 100;
    }
  }
  return ticks;
}

function read(path: string): string | undefined {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return undefined; // the process ended
  }
}

/**
 * CPU time: all of it, and the part the kernel spent on the process's behalf; in clock ticks
 * as a stat line gives them (parseProcStatCpu), in ms once converted (cpuMsOfPid).
 */
export interface CpuTime {
  total: number;
  kernel: number;
}

/**
 * A /proc/<pid>/stat line's CPU: utime + stime, and stime alone as `kernel`; with `reaped`,
 * also the CPU of its children that ended and were waited for (cutime + cstime): a
 * PostgreSQL backend that exits within the window (`psql \copy`'s) still counts.
 */
export function parseProcStatCpu(stat: string, reaped = false): CpuTime {
  // Fields after the command (which may hold spaces and parentheses) start after the last ')'.
  const f = stat
    .slice(stat.lastIndexOf(')') + 2)
    .split(' ')
    .map(Number);
  const [utime, stime, cutime, cstime] = [f[11]!, f[12]!, f[13]!, f[14]!];
  return reaped
    ? { total: utime + stime + cutime + cstime, kernel: stime + cstime }
    : { total: utime + stime, kernel: stime };
}

/** A process's CPU in ms (see parseProcStatCpu), or nothing when it is gone. */
function cpuMsOfPid(pid: number, reaped = false): CpuTime {
  const stat = read(`/proc/${pid}/stat`);
  if (!stat) return { total: 0, kernel: 0 };
  const t = parseProcStatCpu(stat, reaped);
  const ms = 1000 / clockTicks();
  return { total: t.total * ms, kernel: t.kernel * ms };
}

function rssKiBOfPid(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(read(`/proc/${pid}/status`) ?? '');
  return m ? Number(m[1]) : 0;
}

/** The process and its descendants (PostgreSQL is a postmaster and one backend per client). */
export function processTree(root: number): number[] {
  const children = new Map<number, number[]>();
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    const stat = read(`/proc/${name}/stat`);
    if (!stat) continue;
    const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
    children.set(ppid, [...(children.get(ppid) ?? []), Number(name)]);
  }
  const out: number[] = [];
  const walk = (pid: number) => {
    out.push(pid);
    for (const c of children.get(pid) ?? []) walk(c);
  };
  walk(root);
  return out;
}

export interface ProcessUsage {
  cpuMs: number;
  /** The part of cpuMs the kernel spent on the process's behalf (system calls, its sockets). */
  kernelMs: number;
  /** The highest RSS sampled (all processes of the tree together). */
  maxRssMiB: number;
}

/**
 * CPU time and RSS of named processes over a window: CPU from /proc/<pid>/stat (what the
 * kernel charged them), RSS sampled every 250 ms and the maximum kept.
 */
export class ProcessMeter {
  private readonly start = new Map<string, CpuTime>();
  private readonly maxRss = new Map<string, number>();
  /** The last CPU reading of each name: a process that exits keeps what it used until then. */
  private readonly lastCpu = new Map<string, CpuTime>();
  /** Each name's CPU at the end of the last `window()` (or at `begin()`). */
  private readonly windowFrom = new Map<string, number>();
  private timer: NodeJS.Timeout | undefined;

  constructor(private readonly processes: Record<string, { pid: number | undefined; tree?: boolean }>) {}

  private pids(name: string): number[] {
    const p = this.processes[name]!;
    if (!p.pid) return [];
    return p.tree ? processTree(p.pid) : [p.pid];
  }

  private cpu(name: string): CpuTime {
    const p = this.processes[name]!;
    return this.pids(name).reduce(
      (s, pid) => {
        const c = cpuMsOfPid(pid, !!p.tree && pid === p.pid);
        return { total: s.total + c.total, kernel: s.kernel + c.kernel };
      },
      { total: 0, kernel: 0 },
    );
  }

  /** The later of the reading now and the last one (a process that exited keeps its CPU). */
  private latest(name: string): CpuTime {
    const now = this.cpu(name);
    const last = this.lastCpu.get(name);
    return last && last.total > now.total ? last : now;
  }

  private sampleRss(): void {
    for (const name of Object.keys(this.processes)) {
      const cpu = this.latest(name);
      if (cpu.total > 0) this.lastCpu.set(name, cpu);
      const kib = this.pids(name).reduce((s, pid) => s + rssKiBOfPid(pid), 0);
      this.maxRss.set(name, Math.max(this.maxRss.get(name) ?? 0, kib / 1024));
    }
  }

  begin(): this {
    for (const name of Object.keys(this.processes)) {
      const cpu = this.cpu(name);
      this.start.set(name, cpu);
      this.windowFrom.set(name, cpu.total);
    }
    this.maxRss.clear();
    this.sampleRss();
    this.timer = setInterval(() => this.sampleRss(), 250);
    this.timer.unref();
    return this;
  }

  /**
   * CPU time of each process since the last call (or `begin()`), in ms: one window of a run,
   * so a process that took more in some seconds than in others shows when.
   */
  window(): Record<string, number> {
    const out: Record<string, number> = {};
    for (const name of Object.keys(this.processes)) {
      const now = this.latest(name).total;
      out[name] = Math.max(0, now - (this.windowFrom.get(name) ?? now));
      this.windowFrom.set(name, now);
    }
    return out;
  }

  end(): Record<string, ProcessUsage> {
    clearInterval(this.timer);
    this.sampleRss();
    const out: Record<string, ProcessUsage> = {};
    for (const name of Object.keys(this.processes)) {
      const end = this.latest(name);
      const start = this.start.get(name) ?? { total: 0, kernel: 0 };
      out[name] = {
        cpuMs: end.total - start.total,
        kernelMs: end.kernel - start.kernel,
        maxRssMiB: Math.round(this.maxRss.get(name) ?? 0),
      };
    }
    return out;
  }
}

/** The machine's CPU time so far, all cores together, in clock ticks (/proc/stat's `cpu` line). */
export interface MachineTicks {
  total: number;
  /** system + irq + softirq: the kernel's own work. */
  kernel: number;
  idle: number;
  iowait: number;
  steal: number;
}

/** The first line of /proc/stat as ticks: user nice system idle iowait irq softirq steal ... */
export function parseMachineTicks(stat: string | undefined): MachineTicks | undefined {
  const line = stat?.split('\n', 1)[0];
  if (!line?.startsWith('cpu ')) return undefined;
  // Guest time is inside user already: the first eight fields are the whole.
  const f = line.trim().split(/\s+/).slice(1, 9).map(Number);
  if (f.length < 8 || f.some((x) => !Number.isFinite(x))) return undefined;
  return {
    total: f.reduce((a, b) => a + b, 0),
    kernel: f[2]! + f[5]! + f[6]!,
    idle: f[3]!,
    iowait: f[4]!,
    steal: f[7]!,
  };
}

/** Where the machine's CPU time went over a window, in percent of all its cores' time. */
export interface MachineShare {
  /** Running anything (user, system, interrupts). */
  busy: number;
  /** Of `busy`, the kernel's part (system calls, interrupts). */
  kernel: number;
  /** Idle with a disk write or read outstanding: the disk, not the CPU, held something up. */
  iowait: number;
  /** Taken by the hypervisor for other guests: this machine was not given its cores. */
  steal: number;
}

/** Where the time between two readings went, to a tenth of a percent. */
export function machineShare(before: MachineTicks, now: MachineTicks): MachineShare | undefined {
  const d = now.total - before.total;
  if (!(d > 0)) return undefined;
  const pct = (x: number) => Math.round((x * 1000) / d) / 10;
  const idle = now.idle - before.idle;
  const iowait = now.iowait - before.iowait;
  const steal = now.steal - before.steal;
  return {
    busy: pct(d - idle - iowait - steal),
    kernel: pct(now.kernel - before.kernel),
    iowait: pct(iowait),
    steal: pct(steal),
  };
}

/** Reads /proc/stat at each `take()` and says where the time since the last one went. */
export class MachineMeter {
  private last = parseMachineTicks(read('/proc/stat'));

  take(): MachineShare | undefined {
    const now = parseMachineTicks(read('/proc/stat'));
    const before = this.last;
    this.last = now;
    return now && before ? machineShare(before, now) : undefined;
  }
}

/**
 * Our services' CPU over the servers' (nats-server, PostgreSQL, mosquitto) in the same
 * window. The host's speed moves every absolute figure here by tens of percent within the
 * hour, and the servers' cost with it; this share moves with what our services do per
 * message, so two runs of different code compare on it (docs/performance-history.md,
 * 2026-12-04 forenoon). Undefined when the servers took no CPU or one is missing.
 */
export function servicesOverServers(
  usage: Record<string, ProcessUsage | undefined>,
  services: readonly string[],
): number | undefined {
  const servers = ['nats-server', 'postgres', 'mosquitto'].map((n) => usage[n]?.cpuMs);
  if (servers.some((ms) => ms === undefined)) return undefined;
  const serversMs = servers.reduce((t: number, ms) => t + ms!, 0);
  if (!(serversMs > 0)) return undefined;
  const ours = services.reduce((t, n) => t + (usage[n]?.cpuMs ?? 0), 0);
  return ours / serversMs;
}

/**
 * Readings taken window by window, one record per window, as one series per name: what the
 * results JSON keeps (`{ "nats-server": [41, 43, ...] }`), with undefined for a window that
 * has no reading of that name.
 */
export function seriesByName(
  windows: Array<Record<string, number> | undefined>,
): Record<string, Array<number | undefined>> {
  const names = [...new Set(windows.flatMap((w) => (w ? Object.keys(w) : [])))];
  return Object.fromEntries(names.map((name) => [name, windows.map((w) => w?.[name])]));
}
