import { connect as connectTcp, type Socket } from 'node:net';
import { connect as connectTls } from 'node:tls';
import { parser as packetParser, type Packet } from 'mqtt-packet';
import { encodePacket, followingId } from '@iot/device-client';
import { FrameReader, type PublishFrame } from '@iot/mqtt-bridge-domain';

export interface MqttSessionOptions {
  /** `mqtt://host:port`, or `mqtts://host:port` with `tls`. */
  url: string;
  clientId: string;
  username?: string;
  password?: string;
  tls?: { ca?: Buffer; cert?: Buffer; key?: Buffer };
  /** How long the broker keeps the session (and queues its messages) while the bridge is away. */
  sessionExpiryS: number;
  /** The CONNECT's Receive Maximum: QoS 1 messages the broker may send before their PUBACKs. */
  receiveMaximum: number;
  /** Topic filters subscribed at QoS 1 on every connect. */
  topics: string[];
  keepaliveS?: number;
  reconnectMs?: number;
  connectTimeoutMs?: number;
}

export interface MqttSessionEvents {
  /** A PUBLISH arrived; for QoS 1, `ack(generation, packet.messageId)` sends its PUBACK. */
  message(packet: PublishFrame, generation: number): void;
  /** The broker accepted the connection; the subscriptions follow. */
  connected(sessionPresent: boolean): void;
  /** The broker granted every subscription: messages flow. */
  subscribed(): void;
  /** The connection closed (a reconnect follows unless the session is ending). */
  closed(): void;
  /**
   * Something to log: `error` for what a person must mend (a refused CONNECT or SUBSCRIBE, a
   * broker speaking something else), `warn` for what reconnecting mends (a socket error, a
   * silent broker, a DISCONNECT).
   */
  problem(message: string, level: 'warn' | 'error'): void;
}

const PUBACK_BYTES = 4;

/**
 * The bridge's MQTT 5 connection to the broker: a persistent session that subscribes on every
 * connect and hands each PUBLISH over, with its PUBACK sent only when asked (`ack`), so a
 * message is acknowledged once JetStream holds it (ADR 0004). PUBLISHes are read by the
 * FrameReader (libs/mqtt-bridge-domain), in place; other packets are read and written by
 * mqtt-packet, MQTT.js's own codec; PUBACKs asked for in one event-loop turn leave in one write.
 *
 * Why not MQTT.js's client: it hands a connection's next PUBLISH over only once the previous
 * one's PUBACK is written, so the bridge held its PUBACKs back through a private method
 * (`_sendPacket`); and its per-packet work (stores, queues, `debug` calls) cost the bridge more
 * than the codec (docs/performance.md). The client's part the bridge needs (connect,
 * subscribe, keepalive, reconnect, QoS 1 in both directions) is this file.
 *
 * `generation` counts connections: a PUBACK asked for a message of an earlier connection is
 * not sent, since its packet identifier may name another message on the new one.
 */
export class MqttSession {
  private socket: Socket | undefined;
  private connectedNow = false;
  private subscribedNow = false;
  private ending = false;
  private paused = false;
  private gen = 0;
  private lastReadAt = 0;
  private lastWriteAt = 0;
  private nextId = 1;
  private pubacks: number[] = [];
  private pubacksScheduled = false;
  private subscribeId = 0;
  /** Our QoS 1 PUBLISHes (downlink) waiting for the broker's PUBACK, by packet identifier. */
  private readonly outgoing = new Map<number, { resolve(): void; reject(e: Error): void }>();
  private readonly pinger: NodeJS.Timeout;
  private reconnectTimer: NodeJS.Timeout | undefined;
  private connectTimer: NodeJS.Timeout | undefined;
  private readonly keepaliveMs: number;
  private readonly connectTimeoutMs: number;
  private readonly tls: boolean;
  private readonly host: string;
  private readonly port: number;
  private readonly closedOnce: Promise<void>;
  private onEnded: (() => void) | undefined;

  constructor(
    private readonly o: MqttSessionOptions,
    private readonly on: MqttSessionEvents,
  ) {
    this.keepaliveMs = (o.keepaliveS ?? 60) * 1000;
    this.connectTimeoutMs = o.connectTimeoutMs ?? 10_000;
    const url = new URL(o.url);
    this.tls = url.protocol === 'mqtts:';
    this.host = url.hostname;
    this.port = Number(url.port) || (this.tls ? 8883 : 1883);
    this.closedOnce = new Promise((resolve) => (this.onEnded = resolve));
    // A ping when nothing was written for half the keepalive; a connection that brought
    // nothing, not even the ping's answer, for one and a half is dead: closed, reconnected.
    // While paused the bridge reads nothing by its own choice: silence then says nothing.
    this.pinger = setInterval(() => {
      if (!this.connectedNow) return;
      const now = Date.now();
      if (!this.paused && now - this.lastReadAt > this.keepaliveMs * 1.5) {
        this.on.problem(
          `${o.clientId}: nothing from the broker for ${now - this.lastReadAt} ms; reconnecting`,
          'warn',
        );
        this.socket?.destroy();
      } else if (now - this.lastWriteAt >= this.keepaliveMs / 2) this.write({ cmd: 'pingreq' });
    }, this.keepaliveMs / 4);
    this.pinger.unref();
    this.open();
  }

  get connected(): boolean {
    return this.connectedNow;
  }

  /** Connected, and every subscription granted on this connection. */
  get subscribed(): boolean {
    return this.connectedNow && this.subscribedNow;
  }

  /** The current connection's number; PUBACKs are asked for with the one their PUBLISH came on. */
  get generation(): number {
    return this.gen;
  }

  /** Sends a QoS 1 message's PUBACK, at the end of the turn with the others asked for in it. */
  ack(generation: number, messageId: number): void {
    if (generation !== this.gen || !this.connectedNow) return;
    this.pubacks.push(messageId);
    if (this.pubacksScheduled) return;
    this.pubacksScheduled = true;
    setImmediate(this.sendPubacks);
  }

  /** Stops reading PUBLISHes (the bridge's window is full) until `resume`. */
  pause(): void {
    if (this.paused) return;
    this.paused = true;
    this.socket?.pause();
  }

  resume(): void {
    if (!this.paused) return;
    this.paused = false;
    this.lastReadAt = Date.now(); // the broker's silence is timed from here
    this.socket?.resume();
  }

  /** Closes this connection now (what it had not acknowledged comes again on the next). */
  restart(): void {
    this.socket?.destroy();
  }

  /** Publishes at QoS 1; resolves on the broker's PUBACK, rejects if the connection closes first. */
  publish(topic: string, payload: string | Buffer): Promise<void> {
    if (!this.connectedNow)
      return Promise.reject(new Error(`${this.o.clientId} is not connected to the broker`));
    const messageId = this.takeId();
    return new Promise((resolve, reject) => {
      this.outgoing.set(messageId, { resolve, reject });
      this.write({ cmd: 'publish', topic, payload, qos: 1, messageId, dup: false, retain: false });
    });
  }

  /** Sends what is due, disconnects, and resolves once the socket is closed. */
  end(): Promise<void> {
    this.ending = true;
    clearInterval(this.pinger);
    clearTimeout(this.reconnectTimer);
    if (this.pubacksScheduled) this.sendPubacks();
    if (!this.socket || this.socket.destroyed) {
      this.onEnded?.();
      return this.closedOnce;
    }
    if (this.connectedNow) this.write({ cmd: 'disconnect', reasonCode: 0 });
    this.socket.end();
    // A broker that does not close its side within a second is not waited for.
    setTimeout(() => this.socket?.destroy(), 1_000).unref();
    return this.closedOnce;
  }

  private readonly sendPubacks = (): void => {
    this.pubacksScheduled = false;
    const ids = this.pubacks;
    this.pubacks = [];
    if (ids.length === 0 || !this.connectedNow || this.socket!.destroyed) return;
    // MQTT 5 §3.4.2.1: with Reason Code 0 and no properties a PUBACK is its fixed header and
    // packet identifier, four bytes.
    const bytes = Buffer.allocUnsafe(ids.length * PUBACK_BYTES);
    for (let i = 0, at = 0; i < ids.length; i++, at += PUBACK_BYTES) {
      bytes[at] = 0x40;
      bytes[at + 1] = 0x02;
      bytes.writeUInt16BE(ids[i]!, at + 2);
    }
    this.lastWriteAt = Date.now();
    this.socket!.write(bytes);
  };

  private takeId(): number {
    while (this.outgoing.has(this.nextId) || this.nextId === this.subscribeId)
      this.nextId = followingId(this.nextId);
    const id = this.nextId;
    this.nextId = followingId(id);
    return id;
  }

  private open(): void {
    const { tls, host, port } = this;
    const socket = tls ? connectTls({ host, port, ...this.o.tls }) : connectTcp({ host, port });
    this.socket = socket;
    this.paused = false;
    socket.setNoDelay(true);
    // PUBLISHes are read by the FrameReader, the rest by mqtt-packet, one whole packet at a time.
    const parser = packetParser({ protocolVersion: 5 });
    const bad = (message: string) => {
      this.on.problem(`${this.o.clientId}: bad packet from the broker (${message}); reconnecting`, 'error');
      socket.destroy();
    };
    parser.on('packet', (p: Packet) => this.onPacket(p));
    parser.on('error', (e: Error) => bad(e.message));
    const frames = new FrameReader({
      publish: (p) => this.onPublish(p),
      other: (bytes) => parser.parse(bytes),
      malformed: bad,
    });
    this.connectTimer = setTimeout(() => {
      this.on.problem(
        `${this.o.clientId}: no CONNACK from ${host}:${port} within ${this.connectTimeoutMs} ms; reconnecting`,
        'warn',
      );
      socket.destroy();
    }, this.connectTimeoutMs);
    socket.on(tls ? 'secureConnect' : 'connect', () =>
      this.write({
        cmd: 'connect',
        protocolId: 'MQTT',
        protocolVersion: 5,
        clientId: this.o.clientId,
        clean: false,
        keepalive: this.keepaliveMs / 1000,
        username: this.o.username || undefined,
        password: this.o.password ? Buffer.from(this.o.password) : undefined,
        properties: { sessionExpiryInterval: this.o.sessionExpiryS, receiveMaximum: this.o.receiveMaximum },
      }),
    );
    socket.on('data', (chunk: Buffer) => {
      this.lastReadAt = Date.now();
      frames.push(chunk);
    });
    socket.on('error', (e) => this.on.problem(`${this.o.clientId}: ${e.message}`, 'warn'));
    socket.on('close', () => {
      clearTimeout(this.connectTimer);
      const was = this.connectedNow;
      this.connectedNow = false;
      this.subscribedNow = false;
      this.gen++;
      this.pubacks = [];
      for (const o of this.outgoing.values())
        o.reject(new Error(`the connection to the broker closed before it acknowledged the message`));
      this.outgoing.clear();
      if (was) this.on.closed();
      if (this.ending) this.onEnded?.();
      else this.reconnectTimer = setTimeout(() => this.open(), this.o.reconnectMs ?? 1_000);
    });
  }

  private onPublish(p: PublishFrame): void {
    if (p.qos === 2) {
      // The bridge subscribes at QoS 1: the broker must not send more (MQTT 5 §3.8.3.1).
      this.on.problem(
        `${this.o.clientId}: the broker sent a QoS 2 message on ${p.topic}; reconnecting`,
        'error',
      );
      this.socket?.destroy();
      return;
    }
    this.on.message(p, this.gen);
  }

  private onPacket(p: Packet): void {
    switch (p.cmd) {
      case 'puback': {
        const o = this.outgoing.get(p.messageId!);
        this.outgoing.delete(p.messageId!);
        if (!o) return;
        if ((p.reasonCode ?? 0) < 0x80) o.resolve();
        else o.reject(new Error(`the broker refused the message (PUBACK reason code ${p.reasonCode})`));
        return;
      }
      case 'connack':
        clearTimeout(this.connectTimer);
        if (p.reasonCode) {
          this.on.problem(
            `${this.o.clientId}: the broker refused the connection (CONNACK reason code ${p.reasonCode})`,
            'error',
          );
          this.socket?.destroy();
          return;
        }
        this.connectedNow = true;
        this.on.connected(p.sessionPresent);
        // SUBSCRIBE on every connect, even when the session is present: mosquitto 2.0 restores
        // a shared subscription from its persistence file after a restart but delivers nothing
        // to it until it is subscribed again (./platform chaos broker-restart lost every message
        // without this).
        this.subscribeId = this.takeId();
        this.write({
          cmd: 'subscribe',
          messageId: this.subscribeId,
          subscriptions: this.o.topics.map((topic) => ({ topic, qos: 1 as const })),
        });
        return;
      case 'suback': {
        if (p.messageId !== this.subscribeId) return;
        this.subscribeId = 0;
        const refused = this.o.topics.filter((_, i) => ((p.granted[i] as number) ?? 0x80) >= 0x80);
        if (refused.length > 0)
          this.on.problem(
            `${this.o.clientId}: subscribe refused for ${refused.join(', ')}; check the broker ACL`,
            'error',
          );
        else {
          this.subscribedNow = true;
          this.on.subscribed();
        }
        return;
      }
      case 'disconnect':
        this.on.problem(
          `${this.o.clientId}: the broker disconnected (reason code ${p.reasonCode ?? 0})`,
          'warn',
        );
        return;
      default:
        return; // pingresp: its arrival is what counts (lastReadAt)
    }
  }

  private write(packet: Packet): void {
    const bytes = encodePacket(packet, 5);
    if (typeof bytes === 'string') {
      this.on.problem(`${this.o.clientId}: cannot send ${packet.cmd}: ${bytes}`, 'error');
      this.socket?.destroy();
      return;
    }
    this.lastWriteAt = Date.now();
    if (this.socket && !this.socket.destroyed) this.socket.write(bytes);
  }
}
