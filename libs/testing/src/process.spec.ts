import { waitFor } from './process';

describe('waitFor', () => {
  it('fails at once when the awaited process has exited, naming it and what was awaited', async () => {
    const gone = { name: 'nats-n1', running: () => false };
    await expect(
      waitFor('nats-server n1 to be healthy', () => false, 600_000, undefined, gone),
    ).rejects.toThrow('nats-n1 exited while waiting for nats-server n1 to be healthy');
  });

  it('resolves when the check holds, even from a process that is still starting', async () => {
    let polls = 0;
    await waitFor('three polls', () => ++polls === 3, 600_000, undefined, { name: 'x', running: () => true });
    expect(polls).toBe(3);
  });
});
