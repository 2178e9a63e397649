import { Inject, Injectable, type OnApplicationBootstrap, type OnApplicationShutdown } from '@nestjs/common';
import { readFileSync } from 'node:fs';
import mqtt, {
  type IClientOptions,
  type IPublishPacket,
  type ISubscriptionMap,
  type MqttClient,
  type Packet,
} from 'mqtt';
import { deviceHeaders, DlqReasons, Headers, Subjects, UNKNOWN_TENANT } from '@iot/contracts';
import { EndOfTurnQueue, Packer, RetryableError, type JetStreamPublisher } from '@iot/messaging';
import { bridgeSubscriptions, messageIdOf, parseDeviceTopic, PubackWindow } from '@iot/mqtt-bridge-domain';
import { newTraceparent, type IotMetrics, type Logger } from '@iot/observability';
import { ENV, LOGGER, METRICS, PUBLISHER, READINESS, type Readiness } from '@iot/service-runtime';
import { DeviceGate } from './device-gate';
import type { BridgeEnv } from './env';

export const STAGE = 'mqtt-bridge';

/**
 * Telemetry messages waiting for their pack that make it leave at the end of the turn rather
 * than after RAW_PACK_LINGER_MS (the default window, 32, or a whole window if smaller). With
 * MQTT_WINDOW=128 a pack waiting for a whole window lingered in turns that brought fewer: the
 * bridge drained its sessions at 45,000-55,000 msg/s, against 54,000-60,000 with no wait
 * (docs/performance-history.md, 2026-12-06 19:38).
 */
const PACK_AT_END_OF_TURN = 32;

/** MQTT.js's packet writer: not in its public types, but how its PUBACKs leave. */
type SendPacket = (packet: Packet, cb?: (err?: Error) => void, ...rest: unknown[]) => void;

/**
 * Takes device messages from the broker and hands them to JetStream. A QoS 1 message is
 * acknowledged to the broker (PUBACK) only after JetStream has acknowledged the publish.
 *
 * MQTT.js handles a connection's next PUBLISH only once `handleMessage`'s callback has been
 * called and the PUBACK it then writes has been handed to the socket: one message in flight
 * per connection, so at most MQTT_CONNECTIONS in the whole bridge, each costing its own NATS
 * write and its own PUBACK write. Instead, the callback is called at once and the PUBACK it
 * produces is kept in the connection's `PubackWindow`, which releases PUBACKs in arrival
 * order as their messages are held by JetStream (ADR 0004). MQTT_WINDOW bounds how many
 * messages of one connection are on their way at once (also asked of the broker as the
 * CONNECT's Receive Maximum).
 */
@Injectable()
export class MqttIngest implements OnApplicationBootstrap, OnApplicationShutdown {
  private clients: MqttClient[] = [];
  private readonly windows: PubackWindow<Packet>[] = [];
  private readonly subscribed = new Set<MqttClient>();
  private stopping = false;
  /**
   * Released PUBACKs go out at the end of the loop turn, together. MQTT.js writes each packet
   * corked until the next tick; PUBACKs sent one by one as their JetStream acks came in left
   * in one `writev` each, a third of the bridge's CPU in the end-to-end bench. Sent together,
   * they leave in one write per connection.
   */
  private readonly pubacks = new EndOfTurnQueue<() => void>((due) => {
    for (const send of due) send();
  });

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
    for (let i = 0; i < this.env.MQTT_CONNECTIONS; i++) this.clients.push(this.connect(i));
    this.readiness.add('mqtt', () => this.clients.every((c) => c.connected && this.subscribed.has(c)));
  }

  private connect(index: number): MqttClient {
    const e = this.env;
    const opts: IClientOptions = {
      clientId: `${e.MQTT_CLIENT_ID}-${index}`,
      username: e.MQTT_USERNAME || undefined,
      password: e.MQTT_PASSWORD || undefined,
      protocolVersion: 5,
      // A persistent session: QoS 1 messages wait at the broker while the bridge restarts.
      clean: false,
      // Receive Maximum: how many QoS 1 messages the broker may send before their PUBACKs.
      properties: { sessionExpiryInterval: 7 * 24 * 3600, receiveMaximum: e.MQTT_WINDOW },
      reconnectPeriod: 1_000,
      connectTimeout: 10_000,
      ca: e.MQTT_CA_FILE ? readFileSync(e.MQTT_CA_FILE) : undefined,
      cert: e.MQTT_CERT_FILE ? readFileSync(e.MQTT_CERT_FILE) : undefined,
      key: e.MQTT_KEY_FILE ? readFileSync(e.MQTT_KEY_FILE) : undefined,
      // MQTT.js logs each packet several times through `debug`, which costs even when it
      // prints nothing (2% of the bridge's CPU in a profile). DEBUG=mqttjs* brings it back.
      log: process.env.DEBUG?.includes('mqttjs') ? undefined : () => undefined,
    };
    const client = mqtt.connect(e.MQTT_URL, opts);
    const internals = client as unknown as { _sendPacket?: SendPacket };
    if (typeof internals._sendPacket !== 'function')
      throw new Error(
        'this MQTT.js has no _sendPacket, which the bridge needs to hold PUBACKs until JetStream has ' +
          'the message (ADR 0004): keep the mqtt package at the version in package-lock.json (5.16)',
      );
    const sendPacket: SendPacket = internals._sendPacket.bind(client);
    // A PUBACK released after its connection closed would go out on the next connection,
    // where its packet id may name another message: each connection counts its closes.
    let generation = 0;
    // mosquitto 2.0 does not keep to the Receive Maximum (over a thousand messages in flight
    // were seen with 32 asked): past MQTT_WINDOW, the next PUBLISH waits here for a release.
    let blocked: (() => void) | undefined;
    const window = new PubackWindow<Packet>((pubacks) => {
      const sentOn = generation;
      for (const puback of pubacks)
        this.pubacks.push(() => {
          if (sentOn === generation && client.connected) sendPacket(puback);
        });
      const next = blocked;
      blocked = undefined;
      next?.();
    });
    this.windows.push(window);
    let capture: ((puback: Packet) => void) | undefined;
    internals._sendPacket = (packet, cb, ...rest) => {
      if (!capture || packet.cmd !== 'puback') return sendPacket(packet, cb, ...rest);
      capture(packet);
      cb?.(); // MQTT.js goes on to the connection's next PUBLISH
    };
    // Called for every incoming PUBLISH; MQTT.js produces the PUBACK when `done` is called.
    client.handleMessage = (packet, done) => {
      // Stopping: nothing more is taken (and the connection's queue stalls); the broker
      // sends again what is not acknowledged.
      if (this.stopping) return;
      const entry = window.hold();
      const goOn = () => {
        capture = entry.capture;
        try {
          done();
        } finally {
          capture = undefined;
        }
      };
      if (window.size <= e.MQTT_WINDOW) goOn();
      else blocked = goOn;
      this.take(packet).then(
        () => entry.settle(),
        (err) => {
          // Not acknowledged, nor anything after it on this connection: the broker keeps
          // those messages in the session and sends them again.
          this.logger.error(
            { topic: packet.topic, err: String(err), unacknowledged: window.size },
            'message not handed over; leaving it unacknowledged',
          );
          window.drop();
          if (!this.stopping) client.end(true, undefined, () => client.reconnect());
        },
      );
    };
    client.on('close', () => {
      generation++;
      window.drop();
      blocked = undefined; // that connection's packet queue is gone with it
    });
    client.on('connect', (ack) => {
      this.logger.info(
        { clientId: opts.clientId, sessionPresent: ack.sessionPresent },
        'connected to the MQTT broker',
      );
      // SUBSCRIBE on every connect, even when the session is present: mosquitto 2.0 restores a
      // shared subscription from its persistence file after a restart but delivers nothing to
      // it until it is subscribed again (./platform chaos broker-restart lost every message
      // without this). MQTT.js skips a topic it believes subscribed unless told `resubscribe`.
      const topics = Object.fromEntries(
        bridgeSubscriptions(e.MQTT_SHARE_GROUP).map((t) => [t, { qos: 1 as const }]),
      );
      client.subscribe({ ...topics, resubscribe: true } as ISubscriptionMap, (err, granted) => {
        const refused = granted?.filter((g) => g.qos > 2) ?? [];
        if (err || refused.length > 0)
          this.logger.error(
            { err: err ? String(err) : undefined, refused: refused.map((g) => g.topic) },
            'subscribe failed; check the broker ACL',
          );
        else this.subscribed.add(client);
      });
    });
    client.on('error', (err) =>
      this.logger.warn({ clientId: opts.clientId, err: String(err) }, 'MQTT error'),
    );
    client.on('offline', () => this.subscribed.delete(client));
    client.on('offline', () =>
      this.logger.warn({ clientId: opts.clientId }, 'MQTT connection lost; reconnecting'),
    );
    return client;
  }

  /** Hands one MQTT message to JetStream (or to the DLQ); resolves when it is held there. */
  async take(packet: IPublishPacket): Promise<void> {
    const end = this.metrics.processingDuration.startTimer({ stage: STAGE });
    this.metrics.messagesReceived.inc({ stage: STAGE });
    const receivedAt = Date.now();
    const payload = typeof packet.payload === 'string' ? Buffer.from(packet.payload) : packet.payload;
    const topic = parseDeviceTopic(packet.topic);
    const device = topic?.device ?? '';
    const msgId = messageIdOf(device || packet.topic, payload);
    const headers: Record<string, string> = {
      [Headers.sourceTopic]: packet.topic,
      [Headers.receivedAt]: String(receivedAt),
      [Headers.device]: device,
    };
    const traceparent = newTraceparent();
    const reject = async (
      reason: (typeof DlqReasons)[keyof typeof DlqReasons],
      detail: string,
      tenant = UNKNOWN_TENANT,
    ) => {
      await this.publisher.publishToDlq({
        stage: STAGE,
        tenant,
        originalSubject: packet.topic,
        data: payload.subarray(0, this.env.MAX_PAYLOAD_BYTES),
        originalHeaders: { ...headers, [Headers.traceparent]: traceparent },
        reason,
        detail,
        msgId,
      });
      this.metrics.messagesProcessed.inc({ stage: STAGE, outcome: 'dlq' });
      this.logger.warn({ topic: packet.topic, reason, detail }, 'message dead-lettered');
      end();
    };
    if (!topic)
      return reject(
        DlqReasons.rejected,
        `topic "${packet.topic}" is not a device topic: use devices/<id>/telemetry`,
      );
    if (payload.byteLength > this.env.MAX_PAYLOAD_BYTES)
      return reject(
        DlqReasons.payloadTooLarge,
        `payload of ${payload.byteLength} bytes exceeds the limit of ${this.env.MAX_PAYLOAD_BYTES} bytes (first bytes kept)`,
      );
    const record = this.gate.device(device);
    if (!record || record.state !== 'active')
      return reject(
        DlqReasons.unknownDevice,
        record
          ? `device "${device}" is ${record.state}`
          : `device "${device}" is not registered: register it, then replay`,
      );
    headers[Headers.tenant] = record.tenant;
    headers[Headers.model] = topic.model ?? record.model;
    if (topic.kind === 'telemetry') {
      const decision = this.gate.limiter.take(device, headers[Headers.model]);
      if (!decision.allowed) {
        // Dropped by policy, and acknowledged so the device does not resend it forever;
        // counted, and said in the device's status (at most once a minute).
        this.metrics.messagesProcessed.inc({ stage: STAGE, outcome: 'dropped' });
        if (decision.notify)
          await this.noticeRateLimited(record.tenant, device, decision.dropped, receivedAt);
        end();
        return;
      }
    }
    const subject =
      topic.kind === 'telemetry'
        ? Subjects.raw(record.tenant, device)
        : Subjects.status(record.tenant, device);
    const opts = { msgId, headers, traceparent };
    if (topic.kind === 'telemetry' && this.packer)
      await this.packer.addBytes(record.tenant, subject, payload, opts);
    else await this.publisher.publish(subject, payload, opts);
    this.metrics.messagesProcessed.inc({ stage: STAGE, outcome: 'ok' });
    end();
  }

  private nextClient = 0;

  /**
   * Publishes to a device topic at QoS 1 over one of the bridge's connections; resolves once
   * the broker has acknowledged it (PUBACK), so the message is the broker's to deliver.
   */
  async publishToDevice(topic: string, payload: string): Promise<void> {
    for (let i = 0; i < this.clients.length; i++) {
      const client = this.clients[(this.nextClient++ + i) % this.clients.length]!;
      if (client.connected) {
        await client.publishAsync(topic, payload, { qos: 1 });
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
    await Promise.all(this.clients.map((c) => c.endAsync(false)));
  }
}
