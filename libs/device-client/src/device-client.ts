import { connect as connectTcp, type Socket } from 'node:net';
import { connect as connectTls } from 'node:tls';
import { parser as packetParser, type Packet } from 'mqtt-packet';
import { encodePacket, followingId } from './packets';

export interface DeviceClientOptions {
  /** `mqtt://host:port`, or `mqtts://host:port` with `tls`. */
  url: string;
  clientId: string;
  /** false: a persistent session, which the broker keeps across reconnects. */
  clean: boolean;
  tls?: { ca?: Buffer; cert: Buffer; key: Buffer };
  reconnectMs?: number;
  keepaliveS?: number;
  onError(message: string): void;
}

/** Called with undefined when the broker's PUBACK came, with an error if the client ended first. */
export type Settled = (err?: Error) => void;

interface Outgoing {
  topic: string;
  payload: string;
  settled: Settled;
  /** Written to a connection once already: sent again, it carries the DUP flag. */
  sent: boolean;
}

/**
 * One simulated device's MQTT 3.1.1 connection, publishing at QoS 1: each PUBLISH written to
 * its socket as one buffer (mqtt-packet encodes it), settled by its PUBACK. Like a device's
 * client, it reconnects after a second and sends again, flagged DUP, what was not
 * acknowledged (and publishes made while it was away), so a broker restart loses nothing.
 *
 * Why not MQTT.js (the tests' client): the load generator runs on the two cores it
 * measures, and this one costs it about half the CPU per message (README).
 */
export class DeviceClient {
  private socket: Socket | undefined;
  private connected = false;
  private ending = false;
  private nextId = 1;
  private lastWriteAt = 0;
  private readonly inflight = new Map<number, Outgoing>();
  private readonly firstConnect: Promise<void>;
  private onFirstConnect: (() => void) | undefined;
  private readonly pinger: NodeJS.Timeout;
  private reconnectTimer: NodeJS.Timeout | undefined;
  private readonly keepaliveS: number;

  constructor(private readonly o: DeviceClientOptions) {
    const url = new URL(o.url);
    this.firstConnect = new Promise((resolve) => (this.onFirstConnect = resolve));
    this.keepaliveS = o.keepaliveS ?? 60;
    const keepaliveMs = this.keepaliveS * 1000;
    this.pinger = setInterval(() => {
      if (this.connected && Date.now() - this.lastWriteAt >= keepaliveMs / 2) this.write({ cmd: 'pingreq' });
    }, keepaliveMs / 2);
    this.pinger.unref();
    this.open(url);
  }

  /** Resolves on the first CONNACK that accepted the connection. */
  ready(): Promise<void> {
    return this.firstConnect;
  }

  publish(topic: string, payload: string, settled: Settled): void {
    if (this.ending) return settled(new Error(`${this.o.clientId}: the client is ending`));
    const messageId = this.takeId();
    const o: Outgoing = { topic, payload, settled, sent: false };
    this.inflight.set(messageId, o);
    if (this.connected) this.sendPublish(messageId, o);
  }

  /** Disconnects; what is still unacknowledged is settled with an error. */
  end(): void {
    this.ending = true;
    clearInterval(this.pinger);
    clearTimeout(this.reconnectTimer);
    if (this.connected) this.write({ cmd: 'disconnect' });
    this.socket?.end();
    for (const o of this.inflight.values()) o.settled(new Error('not acknowledged before the end'));
    this.inflight.clear();
  }

  /** The next packet identifier (1-65535) not held by an unacknowledged message. */
  private takeId(): number {
    while (this.inflight.has(this.nextId)) this.nextId = followingId(this.nextId);
    const id = this.nextId;
    this.nextId = followingId(id);
    return id;
  }

  private open(url: URL): void {
    const tls = url.protocol === 'mqtts:';
    const port = Number(url.port) || (tls ? 8883 : 1883);
    const socket = tls
      ? connectTls({ host: url.hostname, port, ...this.o.tls })
      : connectTcp({ host: url.hostname, port });
    this.socket = socket;
    socket.setNoDelay(true);
    const parser = packetParser({ protocolVersion: 4 });
    parser.on('packet', (p: Packet) => this.onPacket(p));
    parser.on('error', (e: Error) => {
      this.o.onError(`bad packet from the broker: ${e.message}`);
      socket.destroy();
    });
    socket.on(tls ? 'secureConnect' : 'connect', () =>
      this.write({
        cmd: 'connect',
        protocolId: 'MQTT',
        protocolVersion: 4,
        clientId: this.o.clientId,
        clean: this.o.clean,
        keepalive: this.keepaliveS,
      }),
    );
    socket.on('data', (chunk: Buffer) => parser.parse(chunk));
    socket.on('error', (e) => this.o.onError(e.message));
    socket.on('close', () => {
      this.connected = false;
      if (!this.ending) this.reconnectTimer = setTimeout(() => this.open(url), this.o.reconnectMs ?? 1_000);
    });
  }

  private onPacket(p: Packet): void {
    if (p.cmd === 'puback') {
      const o = this.inflight.get(p.messageId!);
      if (!o) return;
      this.inflight.delete(p.messageId!);
      o.settled();
    } else if (p.cmd === 'connack') {
      if (p.returnCode) {
        this.o.onError(`the broker refused the connection (CONNACK return code ${p.returnCode})`);
        this.socket?.end();
        return;
      }
      this.connected = true;
      // Unacknowledged messages go again, in their order, flagged as a possible duplicate
      // when they were sent before; those published while away go for the first time.
      for (const [id, o] of this.inflight) this.sendPublish(id, o);
      this.onFirstConnect?.();
      this.onFirstConnect = undefined;
    }
  }

  private sendPublish(messageId: number, o: Outgoing): void {
    const { topic, payload, sent: dup } = o;
    o.sent = true;
    this.write({ cmd: 'publish', topic, payload, qos: 1, messageId, dup, retain: false });
  }

  private write(packet: Packet): void {
    const bytes = encodePacket(packet, 4);
    if (typeof bytes === 'string') {
      this.o.onError(`cannot send ${packet.cmd}: ${bytes}`);
      this.socket?.destroy();
      return;
    }
    this.lastWriteAt = Date.now();
    // Held until the turn of the event loop ends, as MQTT.js's codec does (cork, then uncork
    // on the next tick): a tick's messages leave together after all were encoded, so the
    // broker and the pipeline behind it see the same bursts as with MQTT.js. Written as they
    // were made, spread between the encoding of the next ones, they cost nats-server 4 µs and
    // mosquitto 2 µs more per message in e2e (2026-12-04, six interleaved pairs).
    const socket = this.socket!;
    socket.cork();
    socket.write(bytes);
    process.nextTick(uncork, socket);
  }
}

function uncork(socket: Socket): void {
  socket.uncork();
}
