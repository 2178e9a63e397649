import {
  BadRequestException,
  ConflictException,
  HttpException,
  HttpStatus,
  Injectable,
  NotFoundException,
  ServiceUnavailableException,
  UnauthorizedException,
  type CallHandler,
  type ExecutionContext,
  type NestInterceptor,
} from '@nestjs/common';
import type { Response } from 'express';
import { catchError, type Observable } from 'rxjs';
import { AuthError } from '@iot/auth-data-access';

/** The one mapper from the accounts' errors to HTTP; the global filter writes the problem document. */
export function httpErrorOf(e: AuthError): HttpException {
  switch (e.kind) {
    case 'invalid-input':
      return new BadRequestException(e.message);
    case 'invalid-credentials':
    case 'invalid-token':
      return new UnauthorizedException(e.message);
    case 'locked':
      return new HttpException(e.message, HttpStatus.TOO_MANY_REQUESTS);
    case 'not-found':
      return new NotFoundException(e.message);
    case 'conflict':
      return new ConflictException(e.message);
    case 'unavailable':
      return new ServiceUnavailableException(e.message);
  }
}

@Injectable()
export class AuthErrorsInterceptor implements NestInterceptor {
  intercept(ctx: ExecutionContext, next: CallHandler): Observable<unknown> {
    return next.handle().pipe(
      catchError((e: unknown) => {
        if (!(e instanceof AuthError)) throw e;
        if (e.retryAfterS)
          ctx.switchToHttp().getResponse<Response>().setHeader('Retry-After', String(e.retryAfterS));
        throw httpErrorOf(e);
      }),
    );
  }
}
