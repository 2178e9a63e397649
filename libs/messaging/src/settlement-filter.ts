import { Catch, type ArgumentsHost } from '@nestjs/common';
import { BaseExceptionFilter } from '@nestjs/core';
import { throwError, type Observable } from 'rxjs';

/**
 * Nest's default RPC exception handler turns any error into `{status: 'error', message}`,
 * which would erase the kind of failure that settlement depends on (retryable, permanent,
 * validation). On the JetStream transport this filter hands the original error back to
 * {@link JetStreamServer}; HTTP errors keep Nest's usual handling.
 */
@Catch()
export class SettlementPassThroughFilter extends BaseExceptionFilter {
  override catch(exception: unknown, host: ArgumentsHost): Observable<never> | void {
    if (host.getType() === 'rpc') return throwError(() => exception);
    return super.catch(exception, host);
  }
}
