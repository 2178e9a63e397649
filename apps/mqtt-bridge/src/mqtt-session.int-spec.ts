import mqtt, { type MqttClient } from 'mqtt';
import type { PublishFrame } from '@iot/mqtt-bridge-domain';
import { startMosquitto, waitFor, type MosquittoHandle } from '@iot/testing';
import { MqttSession, type MqttSessionOptions } from './mqtt-session';

/** A session on `devices/+/telemetry` that records what it is told. */
function recordingSession(url: string, clientId: string, extra: Partial<MqttSessionOptions> = {}) {
  const got: Array<{ frame: PublishFrame; generation: number }> = [];
  const events: string[] = [];
  const session = new MqttSession(
    {
      url,
      clientId,
      sessionExpiryS: 3600,
      receiveMaximum: 32,
      topics: ['devices/+/telemetry'],
      reconnectMs: 100,
      ...extra,
    },
    {
      message: (frame, generation) =>
        got.push({ frame: { ...frame, payload: Buffer.from(frame.payload) }, generation }),
      connected: (sessionPresent) => events.push(`connected ${sessionPresent}`),
      subscribed: () => events.push('subscribed'),
      closed: () => events.push('closed'),
      problem: (message, level) => events.push(`problem (${level}): ${message}`),
    },
  );
  return { session, got, events };
}

describe('MqttSession: the bridge MQTT 5 session (real mosquitto)', () => {
  let broker: MosquittoHandle;
  let device: MqttClient;
  const sessions: MqttSession[] = [];

  beforeAll(async () => {
    broker = await startMosquitto();
    device = await mqtt.connectAsync(broker.url, { clientId: 'device-1', clean: true });
  });
  afterEach(async () => {
    await Promise.all(sessions.splice(0).map((s) => s.end()));
  });
  afterAll(async () => {
    await device?.endAsync();
    await broker?.stop();
  });

  const publish = (n: number, prefix: string) =>
    Promise.all(
      Array.from({ length: n }, (_, i) =>
        device.publishAsync('devices/device-1/telemetry', `${prefix}-${i}`, { qos: 1 }),
      ),
    );

  it('acknowledges only what it is asked to: the rest comes again on the next connection, flagged DUP', async () => {
    const { session, got, events } = recordingSession(broker.url, 'bridge-ack');
    sessions.push(session);
    await waitFor('the session to subscribe', () => session.subscribed, 5_000);
    await publish(3, 'ack');
    await waitFor('three messages', () => got.length === 3, 5_000);
    const [first, second, third] = got;
    session.ack(first!.generation, first!.frame.messageId!);
    await new Promise((r) => setTimeout(r, 100)); // sent at the end of the turn, read by the broker
    session.restart();
    // Asked for as its connection closes: not sent.
    session.ack(third!.generation, third!.frame.messageId!);
    await waitFor('the two unacknowledged messages again', () => got.length === 5, 5_000);
    const again = got.slice(3);
    expect(again.map((g) => g.frame.payload.toString())).toEqual(['ack-1', 'ack-2']);
    expect(again.every((g) => g.frame.dup && g.generation === session.generation)).toBe(true);
    // The broker sends them again with their packet ids: a PUBACK asked for with the earlier
    // connection's number would acknowledge the copy. It is not sent.
    expect(again.map((g) => g.frame.messageId)).toEqual([second!.frame.messageId, third!.frame.messageId]);
    session.ack(second!.generation, second!.frame.messageId!);
    await new Promise((r) => setTimeout(r, 100));
    session.restart();
    await waitFor('the two again after one more reconnect', () => got.length === 7, 5_000);
    expect(got.slice(5).map((g) => g.frame.payload.toString())).toEqual(['ack-1', 'ack-2']);
    expect(events).toEqual([
      'connected false',
      'subscribed',
      'closed',
      'connected true',
      'subscribed',
      'closed',
      'connected true',
      'subscribed',
    ]);
  });

  it('hands over topic, payload and packet id as the device sent them, and resumes after a pause', async () => {
    const { session, got } = recordingSession(broker.url, 'bridge-pause');
    sessions.push(session);
    await waitFor('the session to subscribe', () => session.subscribed, 5_000);
    session.pause();
    await publish(5, 'paused');
    await new Promise((r) => setTimeout(r, 200));
    expect(got).toHaveLength(0);
    session.resume();
    await waitFor('five messages after the resume', () => got.length === 5, 5_000);
    expect(got.map((g) => g.frame.topic)).toEqual(Array(5).fill('devices/device-1/telemetry'));
    expect(new Set(got.map((g) => g.frame.payload.toString()))).toEqual(
      new Set(['paused-0', 'paused-1', 'paused-2', 'paused-3', 'paused-4']),
    );
    expect(got.every((g) => g.frame.qos === 1 && g.frame.messageId! > 0)).toBe(true);
    for (const g of got) session.ack(g.generation, g.frame.messageId!);
  });

  it('publishes at QoS 1 and resolves on the broker PUBACK; refuses while not connected', async () => {
    const { session } = recordingSession(broker.url, 'bridge-downlink');
    sessions.push(session);
    await expect(session.publish('devices/device-1/cmd', 'early')).rejects.toThrow(/not connected/);
    await waitFor('the session to connect', () => session.connected, 5_000);
    const received: string[] = [];
    const commands = await mqtt.connectAsync(broker.url, { clientId: 'device-cmd', clean: true });
    commands.on('message', (_t, payload) => received.push(payload.toString()));
    await commands.subscribeAsync('devices/device-1/cmd', { qos: 1 });
    await session.publish('devices/device-1/cmd', '{"command":"reboot"}');
    await waitFor('the command at the device', () => received.length === 1, 5_000);
    expect(received).toEqual(['{"command":"reboot"}']);
    await commands.endAsync();
  });

  it('notices a broker that stopped answering (keepalive) and reconnects once it answers again', async () => {
    const { session, events } = recordingSession(broker.url, 'bridge-keepalive', { keepaliveS: 1 });
    sessions.push(session);
    await waitFor('the session to subscribe', () => session.subscribed, 5_000);
    broker.process.signal('SIGSTOP');
    try {
      await waitFor('the dead connection to be closed', () => events.includes('closed'), 10_000);
    } finally {
      broker.process.signal('SIGCONT');
    }
    expect(
      events.some((e) =>
        /^problem \(warn\): bridge-keepalive: nothing from the broker for \d+ ms; reconnecting$/.test(e),
      ),
    ).toBe(true);
    await waitFor('the session to subscribe again', () => session.subscribed, 10_000);
  });

  it('does not take its own pause for a silent broker: still connected after three keepalives paused', async () => {
    const { session, got, events } = recordingSession(broker.url, 'bridge-paused-long', { keepaliveS: 1 });
    sessions.push(session);
    await waitFor('the session to subscribe', () => session.subscribed, 5_000);
    session.pause();
    await publish(1, 'waited');
    await new Promise((r) => setTimeout(r, 3_000));
    expect(events).toEqual(['connected false', 'subscribed']);
    session.resume();
    await waitFor('the message once resumed', () => got.length === 1, 5_000);
    expect(got[0]!.frame.dup).toBe(false);
    session.ack(got[0]!.generation, got[0]!.frame.messageId!);
  });
});

describe('MqttSession against a broker that refuses it', () => {
  let broker: MosquittoHandle;
  beforeAll(async () => {
    broker = await startMosquitto({ allowAnonymous: false });
  });
  afterAll(async () => {
    await broker?.stop();
  });

  it('says the broker refused the connection, never counts as subscribed, and keeps trying', async () => {
    const { session, events } = recordingSession(broker.url, 'bridge-refused');
    try {
      await waitFor(
        'two refusals',
        () => events.filter((e) => e.includes('refused the connection')).length >= 2,
        10_000,
      );
      expect(events.find((e) => e.startsWith('problem'))).toMatch(
        /^problem \(error\): bridge-refused: the broker refused the connection \(CONNACK reason code 13[45]\)$/,
      );
      expect(session.subscribed).toBe(false);
    } finally {
      await session.end();
    }
  });
});
