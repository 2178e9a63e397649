import {
  Body,
  Controller,
  Delete,
  Get,
  HttpCode,
  Inject,
  Param,
  Patch,
  Post,
  Query,
  Req,
  Res,
  ServiceUnavailableException,
  StreamableFile,
  UseInterceptors,
} from '@nestjs/common';
import { ApiBearerAuth, ApiBody, ApiOperation, ApiTags } from '@nestjs/swagger';
import type { Request, Response } from 'express';
import { CurrentPrincipal, Public, Roles } from '@iot/auth-guard';
import { CrlPublisher, DeviceService, type DeviceCa } from '@iot/auth-data-access';
import type { Principal } from '@iot/contracts';
import type { DeviceDirectory } from '@iot/messaging';
import { AuthErrorsInterceptor } from './auth-errors.interceptor';

export const DEVICE_CA = Symbol('DeviceCa');
export const CRL = Symbol('CrlPublisher');
export const DIRECTORY = Symbol('DeviceDirectory');

type Json = Record<string, unknown>;
const bodyOf = (b: unknown): Json => (b && typeof b === 'object' && !Array.isArray(b) ? (b as Json) : {});
const address = (req: Request) => req.ip ?? req.socket.remoteAddress ?? 'unknown';

/** The device registry of a tenant: operators register and change devices, admins delete them. */
@ApiTags('devices')
@ApiBearerAuth()
@UseInterceptors(AuthErrorsInterceptor)
@Controller('v1/tenants/:tenant/devices')
export class DevicesController {
  constructor(private readonly devices: DeviceService) {}

  @Post()
  @ApiOperation({ summary: 'Register a device (published to the registry every service reads)' })
  @ApiBody({
    schema: {
      example: {
        id: 'farm-0042',
        model: 'zenthos-esp32',
        name: 'North field 3',
        asset: 'north-field',
        metadata: {},
      },
    },
  })
  create(@Param('tenant') tenant: string, @Body() body: unknown, @CurrentPrincipal() p: Principal) {
    return this.devices.create(tenant, bodyOf(body), p.userId);
  }

  @Get()
  @ApiOperation({ summary: 'Devices of the tenant by id, a page at a time (after=<last id>, limit ≤ 1000)' })
  async list(
    @Param('tenant') tenant: string,
    @Query('after') after?: string,
    @Query('limit') limit?: string,
    @Query('model') model?: string,
  ) {
    const n = limit !== undefined && /^\d+$/.test(limit) ? Number(limit) : undefined;
    const devices = await this.devices.list(tenant, { after, limit: n, model });
    return { devices, next: devices.length > 0 && devices.length === (n ?? 100) ? devices.at(-1)!.id : null };
  }

  @Get(':device')
  @ApiOperation({ summary: 'One device' })
  get(@Param('tenant') tenant: string, @Param('device') device: string) {
    return this.devices.get(tenant, device);
  }

  @Patch(':device')
  @ApiOperation({
    summary: 'Change model, name, asset, metadata or state ("disabled" stops its data at the bridge)',
  })
  @ApiBody({ schema: { example: { state: 'disabled' } } })
  update(
    @Param('tenant') tenant: string,
    @Param('device') device: string,
    @Body() body: unknown,
    @CurrentPrincipal() p: Principal,
  ) {
    return this.devices.update(tenant, device, bodyOf(body), p.userId);
  }

  @Roles('admin')
  @Delete(':device')
  @HttpCode(204)
  @ApiOperation({ summary: 'Delete a device: its keys go, its certificates are revoked' })
  async remove(
    @Param('tenant') tenant: string,
    @Param('device') device: string,
    @CurrentPrincipal() p: Principal,
  ) {
    await this.devices.remove(tenant, device, p.userId);
  }

  @Roles('admin')
  @Post(':device/keys')
  @ApiOperation({
    summary:
      'A new device key (dev_ak_...), shown once: the device sends it to HTTP ingest or as its MQTT password',
  })
  @ApiBody({ schema: { example: { name: 'gateway firmware 2.1' } } })
  createKey(
    @Param('tenant') tenant: string,
    @Param('device') device: string,
    @Body() body: unknown,
    @CurrentPrincipal() p: Principal,
  ) {
    return this.devices.createKey(tenant, device, bodyOf(body).name, p.userId);
  }

  @Get(':device/keys')
  @ApiOperation({ summary: "The device's keys (never the key itself): created, last used, revoked" })
  async keys(@Param('tenant') tenant: string, @Param('device') device: string) {
    return { keys: await this.devices.listKeys(tenant, device) };
  }

  @Roles('admin')
  @Delete(':device/keys/:key')
  @HttpCode(204)
  @ApiOperation({ summary: 'Revoke a device key (the bridge refuses it within a second)' })
  async revokeKey(
    @Param('tenant') tenant: string,
    @Param('device') device: string,
    @Param('key') key: string,
    @CurrentPrincipal() p: Principal,
  ) {
    await this.devices.revokeKey(tenant, device, key, p.userId);
  }

  @Post(':device/bootstrap-tokens')
  @ApiOperation({ summary: 'A one-time token the device enrols with (POST /v1/pki/enrol), shown once' })
  @ApiBody({ schema: { example: { ttl_s: 86400 } } })
  bootstrap(
    @Param('tenant') tenant: string,
    @Param('device') device: string,
    @Body() body: unknown,
    @CurrentPrincipal() p: Principal,
  ) {
    return this.devices.createBootstrapToken(tenant, device, bodyOf(body).ttl_s, p.userId);
  }

  @Get(':device/certificates')
  @ApiOperation({ summary: 'Certificates issued to the device, newest first' })
  async certificates(@Param('tenant') tenant: string, @Param('device') device: string) {
    return { certificates: await this.devices.listCertificates(tenant, device) };
  }

  @Roles('admin')
  @Post(':device/certificates/:serial/revoke')
  @HttpCode(200)
  @ApiOperation({
    summary: 'Revoke a certificate: the CRL is re-issued and the broker refuses it from its next reload',
  })
  @ApiBody({ schema: { example: { reason: 'keyCompromise' } } })
  revoke(
    @Param('tenant') tenant: string,
    @Param('device') device: string,
    @Param('serial') serial: string,
    @Body() body: unknown,
    @CurrentPrincipal() p: Principal,
  ) {
    return this.devices.revokeCertificate(tenant, device, serial, bodyOf(body).reason, p.userId);
  }
}

/** What a device needs without an account: enrolment, renewal, the CA chain and the CRL. */
@ApiTags('device certificates')
@Public()
@UseInterceptors(AuthErrorsInterceptor)
@Controller('v1/pki')
export class PkiController {
  constructor(
    private readonly devices: DeviceService,
    @Inject(DIRECTORY) private readonly directory: DeviceDirectory,
    @Inject(CRL) private readonly crl: CrlPublisher | undefined,
    @Inject(DEVICE_CA) private readonly ca: DeviceCa | undefined,
  ) {}

  @Post('enrol')
  @ApiOperation({ summary: 'A certificate (CN = the device id) for a CSR and a one-time bootstrap token' })
  @ApiBody({
    schema: { example: { token: 'dev_bt_....acme', csr: '-----BEGIN CERTIFICATE REQUEST-----...' } },
  })
  enrol(@Body() body: unknown, @Req() req: Request) {
    return this.devices.enrol(bodyOf(body), address(req));
  }

  @Post('renew')
  @ApiOperation({
    summary:
      'A new certificate for a device with a valid one: send it and a CSR (same key; or a new key and "signature", base64 SHA-256 of the CSR DER by the current key)',
  })
  renew(@Body() body: unknown, @Req() req: Request) {
    return this.devices.renew(bodyOf(body), (d) => this.directory.get(d)?.tenant, address(req));
  }

  @Get('ca')
  @ApiOperation({ summary: 'The device CA certificate and its chain to the root (PEM)' })
  chain(@Res({ passthrough: true }) res: Response) {
    if (!this.ca) throw new ServiceUnavailableException('this auth service has no device CA configured');
    res.setHeader('Content-Type', 'application/x-pem-file');
    return this.ca.chainPem;
  }

  @Get('crl')
  @ApiOperation({ summary: 'The device CA CRL: DER (application/pkix-crl), or PEM with ?format=pem' })
  crlOf(@Query('format') format: string | undefined, @Res({ passthrough: true }) res: Response) {
    const crl = this.crl?.crl;
    if (!crl)
      throw new ServiceUnavailableException(
        'no CRL yet: the auth service has no device CA configured, or is starting',
      );
    res.setHeader('Cache-Control', 'public, max-age=60');
    res.setHeader('Last-Modified', crl.issuedAt.toUTCString());
    if (format === 'pem') {
      res.setHeader('Content-Type', 'application/x-pem-file');
      return crl.pem;
    }
    return new StreamableFile(crl.der, { type: 'application/pkix-crl', length: crl.der.length });
  }
}
