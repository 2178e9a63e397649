import { Inject, Injectable, type OnApplicationBootstrap, type OnApplicationShutdown } from '@nestjs/common';
import { readFileSync } from 'node:fs';
import { deviceHeaders, DlqReasons, Headers, Subjects, UNKNOWN_TENANT } from '@iot/contracts';
import { Packer, RetryableError, type JetStreamPublisher } from '@iot/messaging';
import {
  bridgeSubscriptions,
  messageIdOf,
  parseDeviceTopic,
  PubackWindow,
  type DeviceTopic,
  type PublishFrame,
} from '@iot/mqtt-bridge-domain';
import { newTraceparent, type IotMetrics, type Logger } from '@iot/observability';
import { ENV, LOGGER, METRICS, PUBLISHER, READINESS, type Readiness } from '@iot/service-runtime';
import { DeviceGate } from './device-gate';
import type { BridgeEnv } from './env';
import { MqttSession } from './mqtt-session';

export const STAGE = 'mqtt-bridge';

/**
 * Telemetry messages waiting for their pack that make it leave at the end of the turn rather
 * than after RAW_PACK_LINGER_MS (the default window, 32, or a whole window if smaller). With
 * MQTT_WINDOW=128 a pack waiting for a whole window lingered in turns that brought fewer: the
 * bridge drained its sessions at 45,000-55,000 msg/s, against 54,000-60,000 with no wait
 * (docs/performance-history.md, 2026-12-06 19:38).
 */
const PACK_AT_END_OF_TURN = 32;

/** Device topics kept parsed (two per device: telemetry and status). */
const TOPICS_REMEMBERED = 100_000;

// Label sets of the metrics counted per message, made once.
const STAGE_LABELS = { stage: STAGE } as const;
const OK_LABELS = { stage: STAGE, outcome: 'ok' } as const;

/**
 * Takes device messages from the broker and hands them to JetStream. A QoS 1 message is
 * acknowledged to the broker (PUBACK) only after JetStream has acknowledged the publish.
 *
 * Each of the MQTT_CONNECTIONS connections (an `MqttSession`) hands its PUBLISHes over as they
 * arrive, and its `PubackWindow` releases their PUBACKs in arrival order as their messages
 * are held by JetStream (ADR 0004). MQTT_WINDOW bounds how many messages of one connection
 * are on their way at once (also asked of the broker as the CONNECT's Receive Maximum, which
 * mosquitto 2.0 does not keep to): past it, the connection reads nothing more until PUBACKs
 * are released.
 */
@Injectable()
export class MqttIngest implements OnApplicationBootstrap, OnApplicationShutdown {
  private sessions: MqttSession[] = [];
  private readonly windows: PubackWindow<number>[] = [];
  private stopping = false;

  /**
   * With RAW_PACKS, the telemetry that arrives within RAW_PACK_LINGER_MS goes to the raw
   * stream in packs, one per tenant, each payload's bytes as they came (docs/adr/0011): one
   * stored message, one ack and one delivery to demux for many. A message alone in its wait
   * goes alone, as before. Once PACK_AT_END_OF_TURN wait (or a whole window, if smaller), the
   * pack leaves at the end of the turn: so many came at once that the broker has more for the
   * bridge, and a wait would only hold the window up.
   */
  private readonly packer: Packer | undefined;

  constructor(
    @Inject(ENV) private readonly env: BridgeEnv,
    @Inject(PUBLISHER) private readonly publisher: JetStreamPublisher,
    @Inject(LOGGER) private readonly logger: Logger,
    @Inject(METRICS) private readonly metrics: IotMetrics,
    @Inject(READINESS) private readonly readiness: Readiness,
    private readonly gate: DeviceGate,
  ) {
    if (env.RAW_PACKS)
      this.packer = new Packer(publisher, Subjects.rawPack, {
        lingerMs: env.RAW_PACK_LINGER_MS,
        soonerAt: Math.min(env.MQTT_WINDOW, PACK_AT_END_OF_TURN),
      });
  }

  onApplicationBootstrap(): void {
    if (!this.env.MQTT_SHARE_GROUP && this.env.MQTT_CONNECTIONS > 1)
      throw new Error(
        `MQTT_SHARE_GROUP is empty (plain subscriptions) but MQTT_CONNECTIONS=${this.env.MQTT_CONNECTIONS}: every connection would get every message; set MQTT_CONNECTIONS=1 or name a group`,
      );
    for (let i = 0; i < this.env.MQTT_CONNECTIONS; i++) this.sessions.push(this.connect(i));
    this.readiness.add('mqtt', () => this.sessions.every((s) => s.subscribed));
  }

  private connect(index: number): MqttSession {
    const e = this.env;
    const clientId = `${e.MQTT_CLIENT_ID}-${index}`;
    const window = new PubackWindow<number>((ids) => {
      // The PUBACKs of one connection's messages, released in their order; the session sends
      // those asked for in one turn together, and none asked for a connection since closed.
      const generation = session.generation;
      for (const id of ids) session.ack(generation, id);
      if (window.size < e.MQTT_WINDOW) session.resume();
    });
    this.windows.push(window);
    // Its events come from the socket, after this function returns.
    const session: MqttSession = new MqttSession(
      {
        url: e.MQTT_URL,
        clientId,
        username: e.MQTT_USERNAME,
        password: e.MQTT_PASSWORD,
        tls:
          e.MQTT_CERT_FILE || e.MQTT_CA_FILE
            ? {
                ca: e.MQTT_CA_FILE ? readFileSync(e.MQTT_CA_FILE) : undefined,
                cert: e.MQTT_CERT_FILE ? readFileSync(e.MQTT_CERT_FILE) : undefined,
                key: e.MQTT_KEY_FILE ? readFileSync(e.MQTT_KEY_FILE) : undefined,
              }
            : undefined,
        // A persistent session: QoS 1 messages wait at the broker while the bridge restarts.
        sessionExpiryS: 7 * 24 * 3600,
        receiveMaximum: e.MQTT_WINDOW,
        topics: bridgeSubscriptions(e.MQTT_SHARE_GROUP),
      },
      {
        message: (packet, generation) => this.onMessage(session, window, packet, generation),
        connected: (sessionPresent) =>
          this.logger.info({ clientId, sessionPresent }, 'connected to the MQTT broker'),
        subscribed: () => this.logger.debug({ clientId }, 'subscribed: messages flow'),
        closed: () => {
          // Whatever was held is not acknowledged on this connection: the broker sends it again.
          window.drop();
          if (!this.stopping) this.logger.warn({ clientId }, 'MQTT connection lost; reconnecting');
        },
        problem: (message, level) => this.logger[level]({ clientId }, message),
      },
    );
    return session;
  }

  /** One PUBLISH of a connection: taken, and its PUBACK held in the window until JetStream has it. */
  private onMessage(
    session: MqttSession,
    window: PubackWindow<number>,
    packet: PublishFrame,
    generation: number,
  ): void {
    // Stopping: nothing more is taken nor acknowledged; the broker sends it again.
    if (this.stopping) return;
    if (packet.qos === 0) {
      this.takeSafely(packet).catch((err) =>
        this.logger.error({ topic: packet.topic, err: String(err) }, 'QoS 0 message not handed over; lost'),
      );
      return;
    }
    const entry = window.hold(packet.messageId!);
    if (window.size >= this.env.MQTT_WINDOW) session.pause();
    this.takeSafely(packet).then(
      () => entry.settle(),
      (err) => {
        // Not acknowledged, nor anything after it on this connection: the broker keeps
        // those messages in the session and sends them again.
        this.logger.error(
          { topic: packet.topic, err: String(err), unacknowledged: window.size },
          'message not handed over; leaving it unacknowledged',
        );
        if (generation === session.generation) {
          window.drop();
          if (!this.stopping) session.restart();
        }
      },
    );
  }

  /** `take`, whose throw (a bug, not an input: inputs go to the DLQ) is a rejection too. */
  private takeSafely(packet: PublishFrame): Promise<void> {
    try {
      return this.take(packet);
    } catch (err) {
      return Promise.reject(err);
    }
  }

  /** Hands one MQTT message to JetStream (or to the DLQ); resolves when it is held there. */
  take(packet: PublishFrame): Promise<void> {
    const startedAt = performance.now();
    this.metrics.messagesReceived.inc(STAGE_LABELS);
    const receivedAt = Date.now();
    const payload = packet.payload;
    const topic = this.deviceTopic(packet.topic);
    const device = topic?.device ?? '';
    const msgId = messageIdOf(device || packet.topic, payload);
    const headers: Record<string, string> = {
      [Headers.sourceTopic]: packet.topic,
      [Headers.receivedAt]: String(receivedAt),
      [Headers.device]: device,
    };
    const traceparent = newTraceparent();
    const rejected = { packet, payload, headers, msgId, traceparent, startedAt };
    if (!topic)
      return this.reject(
        rejected,
        DlqReasons.rejected,
        `topic "${packet.topic}" is not a device topic: use devices/<id>/telemetry`,
      );
    if (payload.byteLength > this.env.MAX_PAYLOAD_BYTES)
      return this.reject(
        rejected,
        DlqReasons.payloadTooLarge,
        `payload of ${payload.byteLength} bytes exceeds the limit of ${this.env.MAX_PAYLOAD_BYTES} bytes (first bytes kept)`,
      );
    const record = this.gate.device(device);
    if (!record || record.state !== 'active')
      return this.reject(
        rejected,
        DlqReasons.unknownDevice,
        record
          ? `device "${device}" is ${record.state}`
          : `device "${device}" is not registered: register it, then replay`,
      );
    headers[Headers.tenant] = record.tenant;
    headers[Headers.model] = topic.model ?? record.model;
    const telemetry = topic.kind === 'telemetry';
    if (telemetry) {
      const decision = this.gate.limiter.take(device, headers[Headers.model]);
      if (!decision.allowed) {
        // Dropped by policy, and acknowledged so the device does not resend it forever;
        // counted, and said in the device's status (at most once a minute).
        this.metrics.messagesProcessed.inc({ stage: STAGE, outcome: 'dropped' });
        this.observe(startedAt);
        return decision.notify
          ? this.noticeRateLimited(record.tenant, device, decision.dropped, receivedAt)
          : Promise.resolve();
      }
    }
    const opts = { msgId, headers, traceparent };
    const held =
      telemetry && this.packer
        ? this.packer.addBytes(record.tenant, Subjects.raw(record.tenant, device), payload, opts)
        : this.publisher.publish(
            telemetry ? Subjects.raw(record.tenant, device) : Subjects.status(record.tenant, device),
            payload,
            opts,
          );
    return held.then(() => {
      this.metrics.messagesProcessed.inc(OK_LABELS);
      this.observe(startedAt);
    });
  }

  private observe(startedAt: number): void {
    this.metrics.processingDuration.observe(STAGE_LABELS, (performance.now() - startedAt) / 1000);
  }

  /** Sends a message the bridge cannot take to the DLQ with its reason; resolves when the DLQ holds it. */
  private async reject(
    m: {
      packet: PublishFrame;
      payload: Buffer;
      headers: Record<string, string>;
      msgId: string;
      traceparent: string;
      startedAt: number;
    },
    reason: (typeof DlqReasons)[keyof typeof DlqReasons],
    detail: string,
    tenant = UNKNOWN_TENANT,
  ): Promise<void> {
    await this.publisher.publishToDlq({
      stage: STAGE,
      tenant,
      originalSubject: m.packet.topic,
      data: m.payload.subarray(0, this.env.MAX_PAYLOAD_BYTES),
      originalHeaders: { ...m.headers, [Headers.traceparent]: m.traceparent },
      reason,
      detail,
      msgId: m.msgId,
    });
    this.metrics.messagesProcessed.inc({ stage: STAGE, outcome: 'dlq' });
    this.logger.warn({ topic: m.packet.topic, reason, detail }, 'message dead-lettered');
    this.observe(m.startedAt);
  }

  /**
   * The device topic `topic` names, parsed once: a bridge sees the same few topics (two per
   * device) again and again. Forgotten all at once past TOPICS_REMEMBERED.
   */
  private deviceTopic(topic: string): DeviceTopic | undefined {
    let parsed = this.topics.get(topic);
    if (parsed === undefined && !this.topics.has(topic)) {
      parsed = parseDeviceTopic(topic);
      if (this.topics.size >= TOPICS_REMEMBERED) this.topics.clear();
      this.topics.set(topic, parsed);
    }
    return parsed;
  }

  private readonly topics = new Map<string, DeviceTopic | undefined>();

  private nextSession = 0;

  /**
   * Publishes to a device topic at QoS 1 over one of the bridge's connections; resolves once
   * the broker has acknowledged it (PUBACK), so the message is the broker's to deliver.
   */
  async publishToDevice(topic: string, payload: string): Promise<void> {
    for (let i = 0; i < this.sessions.length; i++) {
      const session = this.sessions[(this.nextSession++ + i) % this.sessions.length]!;
      if (session.connected) {
        try {
          await session.publish(topic, payload);
        } catch (err) {
          throw new RetryableError(`${topic} not acknowledged by the MQTT broker: ${String(err)}`);
        }
        return;
      }
    }
    throw new RetryableError(`no connection to the MQTT broker to publish ${topic}`);
  }

  /** Publishes the device's status: it sends faster than its model's limit, and how much was dropped. */
  async noticeRateLimited(tenant: string, device: string, dropped: number, at: number): Promise<void> {
    const status = { status: 'rate-limited', device, dropped, at: new Date(at).toISOString(), source: STAGE };
    this.logger.warn(status, 'device exceeds its rate limit; excess dropped');
    await this.publisher.publishJson(Subjects.status(tenant, device), status, {
      msgId: `${device}:rate-limited:${at}`,
      headers: deviceHeaders(tenant, device, at),
    });
  }

  async onApplicationShutdown(): Promise<void> {
    this.stopping = true;
    // What was taken gets its PUBACK if JetStream holds it within a few seconds; the rest is
    // left unacknowledged, and the broker sends it again.
    const until = Date.now() + Math.min(5_000, this.env.SHUTDOWN_GRACE_MS / 2);
    while (this.windows.some((w) => w.size > 0) && Date.now() < until)
      await new Promise((r) => setTimeout(r, 20));
    await new Promise((r) => setImmediate(r)); // the released PUBACKs' turn
    await Promise.all(this.sessions.map((s) => s.end()));
  }
}
