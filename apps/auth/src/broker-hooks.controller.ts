import { createHash, timingSafeEqual } from 'node:crypto';
import {
  Body,
  Controller,
  ForbiddenException,
  Headers,
  HttpCode,
  Inject,
  Post,
  ServiceUnavailableException,
} from '@nestjs/common';
import { ApiBody, ApiOperation, ApiTags } from '@nestjs/swagger';
import { Public } from '@iot/auth-guard';
import { DeviceService } from '@iot/auth-data-access';
import { bridgeMayAccess, deviceMayAccess, type MqttAction } from '@iot/contracts';
import type { DeviceDirectory } from '@iot/messaging';
import type { Logger } from '@iot/observability';
import { LOGGER } from '@iot/service-runtime';
import { DIRECTORY } from './devices.controllers';

export const BROKER_HOOKS = Symbol('BrokerHookSettings');

export interface BrokerHookSettings {
  /** What EMQX sends as `Authorization: Bearer <secret>`; empty: the hooks are off. */
  secret: string;
  bridgeUsername: string;
  bridgePassword: string;
}

type Json = Record<string, unknown>;
const text = (v: unknown): string => (typeof v === 'string' && v !== 'undefined' && v !== 'null' ? v : ''); // EMQX renders an absent placeholder as text
const sha = (v: string) => createHash('sha256').update(v).digest();
const same = (a: string, b: string) => timingSafeEqual(sha(a), sha(b));

type AuthnResult = { result: 'allow' | 'deny'; is_superuser: false; client_attrs?: Record<string, string> };

/**
 * EMQX 5's HTTP authentication and authorisation, in its request and response format
 * (`{"result": "allow" | "deny"}`, HTTP 200). Configure EMQX to POST
 * `{"clientid": "${clientid}", "username": "${username}", "password": "${password}", "cert_common_name": "${cert_common_name}"}`
 * to /v1/emqx/authn and
 * `{"clientid": "${clientid}", "username": "${username}", "topic": "${topic}", "action": "${action}"}`
 * to /v1/emqx/authz, with the header `Authorization: Bearer ${EMQX_HOOK_SECRET}`
 * (docker-compose.yml and k8s/base/emqx have it). Answers come from the in-memory registry: a broker full
 * of reconnecting devices does not reach the database.
 */
@ApiTags('broker hooks')
@Public()
@Controller('v1/emqx')
export class BrokerHooksController {
  constructor(
    @Inject(BROKER_HOOKS) private readonly s: BrokerHookSettings,
    @Inject(DIRECTORY) private readonly directory: DeviceDirectory,
    private readonly devices: DeviceService,
    @Inject(LOGGER) private readonly logger: Logger,
  ) {}

  private check(authorization: string | undefined): void {
    if (!this.s.secret)
      throw new ServiceUnavailableException(
        'the broker hooks are off: set EMQX_HOOK_SECRET on the auth service and in EMQX',
      );
    if (!same(authorization ?? '', `Bearer ${this.s.secret}`))
      throw new ForbiddenException('the broker hook secret does not match EMQX_HOOK_SECRET');
  }

  private activeDevice(id: string) {
    const d = id ? this.directory.get(id) : undefined;
    return d?.state === 'active' ? d : undefined;
  }

  @Post('authn')
  @HttpCode(200)
  @ApiOperation({
    summary:
      'EMQX authentication: a registered active device (certificate CN or device key) or the bridge account',
  })
  @ApiBody({
    schema: {
      example: { clientid: 'farm-0042', username: 'farm-0042', password: '', cert_common_name: 'farm-0042' },
    },
  })
  authn(@Body() body: Json, @Headers('authorization') authorization?: string): AuthnResult {
    this.check(authorization);
    const username = text(body?.username);
    const password = text(body?.password);
    const cn = text(body?.cert_common_name);
    const deny: AuthnResult = { result: 'deny', is_superuser: false };
    if (username && username === this.s.bridgeUsername) {
      // The service account: never by certificate alone, always by its password.
      if (!this.s.bridgePassword || !same(password, this.s.bridgePassword)) return deny;
      return { result: 'allow', is_superuser: false, client_attrs: { role: 'bridge' } };
    }
    if (cn) {
      // EMQX verified the chain and the CRL; the CN names the device, and a username, if
      // any, must be the same name (peer_cert_as_username = cn makes it so).
      const d = this.activeDevice(cn);
      if (!d || (username && username !== cn)) return deny;
      return { result: 'allow', is_superuser: false, client_attrs: { device: d.device, tenant: d.tenant } };
    }
    const d = password ? this.directory.byKey(password) : undefined;
    if (!d || d.state !== 'active' || d.device !== username) return deny;
    this.devices
      .touchKey(d.tenant, password)
      .catch((e) => this.logger.warn({ err: String(e), device: d.device }, 'could not note device key use'));
    return { result: 'allow', is_superuser: false, client_attrs: { device: d.device, tenant: d.tenant } };
  }

  @Post('authz')
  @HttpCode(200)
  @ApiOperation({
    summary: 'EMQX authorisation: a device its own topics only; the bridge all uplink and downlink',
  })
  @ApiBody({
    schema: {
      example: {
        clientid: 'farm-0042',
        username: 'farm-0042',
        topic: 'devices/farm-0042/telemetry',
        action: 'publish',
      },
    },
  })
  authz(@Body() body: Json, @Headers('authorization') authorization?: string): { result: 'allow' | 'deny' } {
    this.check(authorization);
    const username = text(body?.username);
    const topic = text(body?.topic);
    const action = text(body?.action) as MqttAction;
    if (action !== 'publish' && action !== 'subscribe') return { result: 'deny' };
    if (username === this.s.bridgeUsername)
      return { result: bridgeMayAccess(topic, action) ? 'allow' : 'deny' };
    const d = this.activeDevice(username);
    return { result: d && deviceMayAccess(d.device, topic, action) ? 'allow' : 'deny' };
  }
}
