import {
  DRAIN_LIMIT_MS,
  heldRate,
  MAX_DESCENTS,
  MAX_FULL_RUNS,
  nextFullRun,
  nextStep,
  type SearchRun,
} from './search';

/** Runs the plan against a pipeline that holds up to `capacity` and stores at most that. */
function search(
  plan: (runs: SearchRun[]) => number | undefined,
  holds: (rate: number) => boolean,
  capacity: number,
) {
  const runs: SearchRun[] = [];
  for (let rate = plan(runs); rate !== undefined; rate = plan(runs)) {
    runs.push({ rate, ok: holds(rate), storedPerS: Math.min(rate, capacity) });
    if (runs.length > 20) throw new Error(`the search does not end: ${runs.map((r) => r.rate).join(', ')}`);
  }
  return runs.map((r) => `${r.rate}${r.ok ? '' : ' missed'}`);
}

/** The plan against a pipeline that holds every rate up to `capacity`. */
const upTo = (plan: (runs: SearchRun[]) => number | undefined, capacity: number) =>
  search(plan, (rate) => rate <= capacity, capacity);

describe('nextStep', () => {
  const steps = (given: number[], capacity: number) => upTo((runs) => nextStep(given, runs), capacity);

  it('goes up the steps while they hold, then halves the gap to the first missed down to 500', () => {
    expect(steps([8000, 10000, 12000], 9200)).toEqual(['8000', '10000 missed', '9000', '9500 missed']);
    expect(steps([2000, 4000, 6000, 8000], 5000)).toEqual([
      '2000',
      '4000',
      '6000 missed',
      '5000',
      '5500 missed',
    ]);
  });

  it('ends when every step holds', () => {
    expect(steps([8000, 9000, 10000], 20_000)).toEqual(['8000', '9000', '10000']);
  });

  it('stops at 500 between the highest held and the lowest missed, as the steps were given', () => {
    expect(steps([10000, 8000, 9000], 8700)).toEqual(['8000', '9000 missed', '8500']);
  });

  it('goes below the lowest step when it is missed, to what that run stored, then closes in', () => {
    // 8,000 missed having stored 6,700 per second: 6,500 next, not 7,000.
    expect(steps([8000, 9000, 10000], 6700)).toEqual(['8000 missed', '6500', '7500 missed', '7000 missed']);
  });

  it('goes below a missed step by its spacing when the run stored nearly all', () => {
    const runs: SearchRun[] = [{ rate: 8000, ok: false, storedPerS: 7950 }];
    expect(nextStep([8000, 9000], runs)).toBe(7000);
    expect(nextStep([8000], runs)).toBe(7000); // one step: an eighth of it, to 500
  });

  it(`gives up below the lowest step after ${MAX_DESCENTS} tries`, () => {
    // A pipeline that stores nearly all it is sent but never drains in time.
    const never = search(
      (runs) => nextStep([8000, 9000], runs),
      () => false,
      20_000,
    );
    expect(never).toEqual(['8000 missed', '7000 missed', '6000 missed', '5000 missed']);
    // One that stores nothing: nothing to go down to.
    expect(steps([8000, 9000], 0)).toEqual(['8000 missed']);
  });
});

describe('nextFullRun', () => {
  const full = (held: number[], capacity: number) => upTo((runs) => nextFullRun(held, runs), capacity);

  it('runs the highest held step, and no more once a run keeps up', () => {
    expect(full([8000, 8500], 9000)).toEqual(['8500']);
  });

  it('goes down to what the missed run stored when that is below the next held step, then once midway', () => {
    // 8,500 stored 6,700 per second: 6,500 keeps up, then 7,500 (midway, to 250) does not.
    expect(full([7000, 8000, 8500], 6700)).toEqual(['8500 missed', '6500', '7500 missed']);
    // Not midway when the two are 500 apart or less.
    const close: SearchRun[] = [
      { rate: 7000, ok: false, storedPerS: 6600 },
      { rate: 6500, ok: true, storedPerS: 6500 },
    ];
    expect(nextFullRun([7000], close)).toBeUndefined();
  });

  it('takes the next held step when the missed run stored more than it', () => {
    const runs: SearchRun[] = [{ rate: 8500, ok: false, storedPerS: 8400 }];
    expect(nextFullRun([7000, 8000, 8500], runs)).toBe(8000);
    // Nothing held below: 250 under what it stored, at most.
    expect(nextFullRun([8500], runs)).toBe(8250);
  });

  it(`stops after ${MAX_FULL_RUNS} runs, and runs nothing when no step held`, () => {
    const never = search(
      (runs) => nextFullRun([8000], runs),
      () => false,
      20_000,
    );
    expect(never).toEqual(['8000 missed', '7750 missed', '7500 missed']);
    expect(nextFullRun([], [])).toBeUndefined();
  });
});

describe('heldRate', () => {
  const run = { rate: 8000, sentPerS: 7990, lostPoints: 0, drainMs: 300, complete: true };

  it('holds a rate sent, stored whole and drained within a second of the last send', () => {
    expect(heldRate(run)).toBe(true);
    expect(heldRate({ ...run, drainMs: DRAIN_LIMIT_MS })).toBe(true);
  });

  it('does not hold a rate whose backlog outlived the last send by more than a second', () => {
    // 2026-12-06 02:34: 8,000 for 20 s drained 3.2 s after and was taken as held; 60 s at
    // 8,500 then stored 6,698 per second.
    expect(heldRate({ ...run, drainMs: 3_200 })).toBe(false);
    expect(heldRate({ ...run, drainMs: DRAIN_LIMIT_MS + 1 })).toBe(false);
  });

  it('does not hold a rate the devices did not send, one that lost a reading, or one left incomplete', () => {
    expect(heldRate({ ...run, sentPerS: 7500 })).toBe(false);
    expect(heldRate({ ...run, lostPoints: 1 })).toBe(false);
    expect(heldRate({ ...run, complete: false })).toBe(false);
  });
});
