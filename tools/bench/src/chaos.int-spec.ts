import { resolve } from 'node:path';
import { buildOnce } from '@iot/testing';
import { FAST, runScenario, SCENARIOS } from './chaos';

const ROOT = resolve(__dirname, '..', '..', '..');

// The fast subset of ./platform chaos: a few hundred readings per scenario, faults of a few
// seconds. The cluster scenarios (three NATS nodes) and the 70-second lock run in the full set.
const FAST_SUBSET = [
  'writer-sigkill',
  'bridge-sigkill',
  'broker-restart',
  'postgres-down',
  'poison',
  'consumer-deleted',
];

describe('fault injection, fast subset: nothing lost, nothing duplicated, recovered without a human', () => {
  beforeAll(() => buildOnce(ROOT));

  for (const name of FAST_SUBSET) {
    const scenario = SCENARIOS.find((s) => s.name === name)!;
    it(`${name}: ${scenario.title}`, async () => {
      const r = await runScenario(ROOT, scenario, FAST);
      expect({
        lost: r.lostPoints,
        duplicated: r.duplicatedPoints,
        poisonStored: r.poisonStored,
        dlq: r.dlq,
        drained: r.drained,
      }).toEqual({ lost: 0, duplicated: 0, poisonStored: 0, dlq: r.poison, drained: true });
      // Every acknowledged good reading is in the table (not just "none missing").
      expect(r.storedMessages).toBe(r.sent - r.poison);
      if (scenario.poisonEvery) expect(r.poison).toBe(Math.floor(r.sent / scenario.poisonEvery));
    }, 240_000);
  }
});
