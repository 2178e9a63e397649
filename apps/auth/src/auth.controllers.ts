import {
  Body,
  Controller,
  Delete,
  Get,
  HttpCode,
  Inject,
  Param,
  Post,
  Put,
  Query,
  Req,
  Res,
  UseInterceptors,
} from '@nestjs/common';
import { ApiBearerAuth, ApiBody, ApiOperation, ApiTags } from '@nestjs/swagger';
import type { Request, Response } from 'express';
import { CurrentPrincipal, PlatformAdminOnly, Public, Roles } from '@iot/auth-guard';
import { AccountService, PLATFORM_AUDIT_TENANT, type SigningKeyRing } from '@iot/auth-data-access';
import { Subjects, type Principal } from '@iot/contracts';
import type { JetStreamPublisher } from '@iot/messaging';
import { PUBLISHER } from '@iot/service-runtime';
import { AuthErrorsInterceptor } from './auth-errors.interceptor';

export const KEYS = Symbol('SigningKeyRing');

const address = (req: Request) => req.ip ?? req.socket.remoteAddress ?? 'unknown';
type Json = Record<string, unknown>;
const bodyOf = (b: unknown): Json => (b && typeof b === 'object' ? (b as Json) : {});

/** The public keys that verify access tokens; every service's guard fetches them. */
@ApiTags('sessions')
@Public()
@Controller('.well-known')
export class JwksController {
  constructor(@Inject(KEYS) private readonly keys: SigningKeyRing) {}

  @Get('jwks.json')
  @ApiOperation({ summary: 'The JSON Web Key Set of the keys that sign access tokens' })
  jwks(@Res({ passthrough: true }) res: Response) {
    res.setHeader('Cache-Control', 'public, max-age=300');
    return this.keys.jwks();
  }
}

@ApiTags('sessions')
@UseInterceptors(AuthErrorsInterceptor)
@Controller('v1/auth')
export class SessionController {
  constructor(
    private readonly accounts: AccountService,
    @Inject(KEYS) private readonly keys: SigningKeyRing,
    @Inject(PUBLISHER) private readonly publisher: JetStreamPublisher,
  ) {}

  @Public()
  @Post('sign-in')
  @HttpCode(200)
  @ApiOperation({ summary: 'Sign in to a tenant: an access token (15 min) and a refresh token' })
  @ApiBody({
    schema: { example: { email: 'ana@farm.example', password: 'correct horse battery', tenant: 'demo' } },
  })
  signIn(@Body() body: unknown, @Req() req: Request) {
    return this.accounts.signIn(bodyOf(body), address(req));
  }

  @Public()
  @Post('refresh')
  @HttpCode(200)
  @ApiOperation({
    summary:
      'A new token pair for a refresh token, which is spent; spending one twice ends its whole sign-in',
  })
  @ApiBody({ schema: { example: { refresh_token: 'rt_...' } } })
  refresh(@Body() body: unknown, @Req() req: Request) {
    return this.accounts.refresh(bodyOf(body).refresh_token, address(req));
  }

  @Public()
  @Post('sign-out')
  @HttpCode(204)
  @ApiOperation({ summary: 'End the sign-in the refresh token belongs to' })
  async signOut(@Body() body: unknown, @Req() req: Request) {
    await this.accounts.signOut(bodyOf(body).refresh_token, address(req));
  }

  @Public()
  @Post('password-reset')
  @HttpCode(202)
  @ApiOperation({
    summary: 'Send a one-time reset link to the address, if it has an account (same answer either way)',
  })
  async requestReset(@Body() body: unknown, @Req() req: Request) {
    const email = bodyOf(body).email;
    const reset = await this.accounts.requestPasswordReset(email, address(req));
    // The notifier delivers it by e-mail; the token is never in an HTTP answer.
    if (reset)
      await this.publisher.publishJson(
        Subjects.notification('password-reset', reset.user),
        { kind: 'password-reset', user: reset.user, email, token: reset.token },
        { msgId: `password-reset:${reset.token.slice(-16)}` },
      );
    return { status: 'accepted', detail: 'if the address has an account, a reset message is on its way' };
  }

  @Public()
  @Post('password-reset/confirm')
  @HttpCode(204)
  @ApiOperation({ summary: 'Set a new password with the reset token; every session of the account ends' })
  async reset(@Body() body: unknown, @Req() req: Request) {
    await this.accounts.resetPassword(bodyOf(body), address(req));
  }

  @PlatformAdminOnly()
  @ApiBearerAuth()
  @Post('keys/rotate')
  @ApiOperation({
    summary: 'Sign with a new key from now on (the previous one stays published until its tokens expire)',
  })
  async rotate(@CurrentPrincipal() p: Principal) {
    const kid = await this.keys.rotate(true);
    await this.accounts.audit({
      tenant: PLATFORM_AUDIT_TENANT,
      actor: p.userId,
      action: 'signing-key.rotated',
      target: kid,
    });
    return { kid };
  }
}

@ApiTags('tenants and members')
@ApiBearerAuth()
@UseInterceptors(AuthErrorsInterceptor)
@Controller('v1')
export class TenantsController {
  constructor(private readonly accounts: AccountService) {}

  @PlatformAdminOnly()
  @Post('tenants')
  @ApiOperation({ summary: 'Create a tenant (platform admin)' })
  @ApiBody({ schema: { example: { id: 'acme-farms', name: 'Acme Farms' } } })
  createTenant(@Body() body: unknown, @CurrentPrincipal() p: Principal) {
    const b = bodyOf(body);
    return this.accounts.createTenant(b.id, b.name, p.userId);
  }

  @PlatformAdminOnly()
  @Get('tenants')
  @ApiOperation({ summary: 'Every tenant (platform admin)' })
  async tenants() {
    return { tenants: await this.accounts.listTenants() };
  }

  @Roles('admin')
  @Get('tenants/:tenant/users')
  @ApiOperation({ summary: "The tenant's members and their roles" })
  async members(@Param('tenant') tenant: string) {
    return { users: await this.accounts.members(tenant) };
  }

  @Roles('admin')
  @Put('tenants/:tenant/users/:user/role')
  @ApiOperation({ summary: "Change a member's role" })
  @ApiBody({ schema: { example: { role: 'operator' } } })
  setRole(
    @Param('tenant') tenant: string,
    @Param('user') user: string,
    @Body() body: unknown,
    @CurrentPrincipal() p: Principal,
  ) {
    return this.accounts.setRole(tenant, user, bodyOf(body).role, p.userId);
  }

  @Roles('admin')
  @Delete('tenants/:tenant/users/:user')
  @HttpCode(204)
  @ApiOperation({ summary: 'Remove a member: their refresh tokens in this tenant are revoked' })
  async remove(
    @Param('tenant') tenant: string,
    @Param('user') user: string,
    @CurrentPrincipal() p: Principal,
  ) {
    await this.accounts.removeMember(tenant, user, p.userId);
  }

  @Roles('admin')
  @Post('tenants/:tenant/invitations')
  @ApiOperation({ summary: 'Invite a person with a role; the token is shown once, to be sent to them' })
  @ApiBody({ schema: { example: { email: 'ana@farm.example', role: 'viewer' } } })
  invite(@Param('tenant') tenant: string, @Body() body: unknown, @CurrentPrincipal() p: Principal) {
    return this.accounts.invite(tenant, bodyOf(body), p.userId);
  }

  @Public()
  @Post('invitations/accept')
  @ApiOperation({ summary: 'Accept an invitation: a new account, or an existing one given its password' })
  @ApiBody({
    schema: { example: { token: 'inv_....acme-farms', name: 'Ana', password: 'correct horse battery' } },
  })
  accept(@Body() body: unknown, @Req() req: Request) {
    return this.accounts.acceptInvitation(bodyOf(body), address(req));
  }

  @Roles('admin')
  @Get('tenants/:tenant/audit')
  @ApiOperation({ summary: 'Security-relevant actions in the tenant, newest first (page with before_id)' })
  async audit(
    @Param('tenant') tenant: string,
    @Query('action') action?: string,
    @Query('before_id') beforeId?: string,
    @Query('limit') limit?: string,
  ) {
    const num = (v?: string) => (v === undefined || !/^\d+$/.test(v) ? undefined : Number(v));
    return {
      entries: await this.accounts.auditLog(tenant, { action, before_id: num(beforeId), limit: num(limit) }),
    };
  }
}
