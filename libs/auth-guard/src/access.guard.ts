import {
  createParamDecorator,
  ForbiddenException,
  HttpException,
  HttpStatus,
  Injectable,
  NotFoundException,
  SetMetadata,
  UnauthorizedException,
  type CanActivate,
  type ExecutionContext,
} from '@nestjs/common';
import { Reflector } from '@nestjs/core';
import type { Request, Response } from 'express';
import { roleAtLeast, type Principal, type Role } from '@iot/contracts';
import { AccessTokenVerifier, InvalidTokenError, KeysUnavailableError } from './access-token-verifier';

const PUBLIC = 'iot:public';
const ROLE = 'iot:role';
const PLATFORM_ADMIN = 'iot:platform-admin';

/** No access token needed: health, metrics, sign-in, device-key routes (they check their own credential). */
export const Public = () => SetMetadata(PUBLIC, true);

/**
 * The weakest role that may call the route. Without it: reads (GET, HEAD) need `viewer`,
 * everything else `operator`.
 */
export const Roles = (role: Role) => SetMetadata(ROLE, role);

/** Only a platform administrator may call the route (tenants, cross-tenant operations). */
export const PlatformAdminOnly = () => SetMetadata(PLATFORM_ADMIN, true);

/** The verified principal of the request, in a controller's parameters. */
export const CurrentPrincipal = createParamDecorator((_: unknown, ctx: ExecutionContext): Principal => {
  const principal = ctx.switchToHttp().getRequest<Request & { principal?: Principal }>().principal;
  if (!principal) throw new Error('CurrentPrincipal used on a @Public() route');
  return principal;
});

const READS = new Set(['GET', 'HEAD', 'OPTIONS']);

/**
 * The guard every service runs on every HTTP route (registered globally by the service
 * runtime), in this order:
 * 1. a valid access token (401 otherwise, with `WWW-Authenticate: Bearer error="invalid_token"`);
 * 2. the tenant of the route (`:tenant`) is the token's, or the caller is a platform admin:
 *    otherwise 404, so that another tenant's resources cannot even be discovered;
 * 3. the role is enough (403 otherwise).
 * Messages from JetStream (rpc) are not HTTP requests and pass: their tenant is in their subject.
 */
@Injectable()
export class AccessGuard implements CanActivate {
  constructor(
    private readonly reflector: Reflector,
    private readonly verifier: AccessTokenVerifier,
  ) {}

  async canActivate(ctx: ExecutionContext): Promise<boolean> {
    if (ctx.getType() !== 'http') return true;
    const targets = [ctx.getHandler(), ctx.getClass()];
    if (this.reflector.getAllAndOverride<boolean>(PUBLIC, targets)) return true;
    const req = ctx.switchToHttp().getRequest<Request & { principal?: Principal }>();
    const res = ctx.switchToHttp().getResponse<Response>();

    const token = bearer(req.headers.authorization);
    if (!token) {
      res.setHeader('WWW-Authenticate', 'Bearer');
      throw new UnauthorizedException(
        'no access token: send "Authorization: Bearer <token>"; POST /v1/auth/sign-in on the auth service gives one',
      );
    }
    let principal: Principal;
    try {
      principal = await this.verifier.verify(token);
    } catch (e) {
      if (e instanceof InvalidTokenError) {
        res.setHeader(
          'WWW-Authenticate',
          `Bearer error="invalid_token", error_description="${e.message.replace(/"/g, "'")}"`,
        );
        throw new UnauthorizedException(`access token refused: ${e.message}`);
      }
      if (e instanceof KeysUnavailableError) {
        res.setHeader('Retry-After', '5');
        throw new HttpException(`${e.message}; try again shortly`, HttpStatus.SERVICE_UNAVAILABLE);
      }
      throw e;
    }
    req.principal = principal;

    const tenant = req.params?.tenant;
    if (tenant !== undefined && tenant !== principal.tenant && !principal.platformAdmin)
      throw new NotFoundException(`nothing at ${req.path} for tenant ${principal.tenant}`);

    if (this.reflector.getAllAndOverride<boolean>(PLATFORM_ADMIN, targets) && !principal.platformAdmin)
      throw new ForbiddenException('only a platform administrator may do this');
    const needed =
      this.reflector.getAllAndOverride<Role>(ROLE, targets) ??
      (READS.has(req.method) ? 'viewer' : 'operator');
    if (!principal.platformAdmin && !roleAtLeast(principal.role, needed))
      throw new ForbiddenException(
        `your role "${principal.role}" may not do this: it needs "${needed}" or above`,
      );
    return true;
  }
}

function bearer(authorization: string | undefined): string | undefined {
  const m = /^Bearer\s+(\S+)$/i.exec(authorization ?? '');
  return m?.[1];
}
