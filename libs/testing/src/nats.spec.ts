import { availableParallelism } from 'node:os';
import { sharedMachineGoMaxProcs } from './nats';

describe('sharedMachineGoMaxProcs', () => {
  const saved = process.env['IOT_NATS_GOMAXPROCS'];
  afterEach(() => {
    if (saved === undefined) delete process.env['IOT_NATS_GOMAXPROCS'];
    else process.env['IOT_NATS_GOMAXPROCS'] = saved;
  });

  it('gives half the cores, at least one, when the environment does not say', () => {
    delete process.env['IOT_NATS_GOMAXPROCS'];
    expect(sharedMachineGoMaxProcs()).toBe(Math.max(1, Math.floor(availableParallelism() / 2)));
  });

  it("takes IOT_NATS_GOMAXPROCS, with 0 for Go's default", () => {
    process.env['IOT_NATS_GOMAXPROCS'] = '3';
    expect(sharedMachineGoMaxProcs()).toBe(3);
    process.env['IOT_NATS_GOMAXPROCS'] = '0';
    expect(sharedMachineGoMaxProcs()).toBeUndefined();
  });

  it('refuses a value that is not a whole number, naming the variable', () => {
    process.env['IOT_NATS_GOMAXPROCS'] = 'two';
    expect(() => sharedMachineGoMaxProcs()).toThrow(/IOT_NATS_GOMAXPROCS is "two": give a whole number/);
    process.env['IOT_NATS_GOMAXPROCS'] = '-1';
    expect(() => sharedMachineGoMaxProcs()).toThrow(/IOT_NATS_GOMAXPROCS is "-1"/);
  });
});
