import { Catch, HttpException, HttpStatus, type ArgumentsHost, type ExceptionFilter } from '@nestjs/common';
import type { Request, Response } from 'express';
import { throwError, type Observable } from 'rxjs';
import { RetryableError } from '@iot/messaging';
import type { Logger } from '@iot/observability';

/**
 * One mapper per transport, in one place.
 * - JetStream (rpc): the original error goes back to the transport, whose settlement rule
 *   needs its kind (retryable, permanent, validation). Nest's default would turn it into
 *   `{status: 'error', message}`.
 * - HTTP: an RFC 9457 problem details document (`application/problem+json`); a retryable
 *   error (a server away) is a 503 with Retry-After.
 */
@Catch()
export class TransportErrorFilter implements ExceptionFilter {
  constructor(private readonly logger: Logger) {}

  catch(exception: unknown, host: ArgumentsHost): Observable<never> | void {
    if (host.getType() === 'rpc') return throwError(() => exception);
    const http = host.switchToHttp();
    const res = http.getResponse<Response>();
    const req = http.getRequest<Request>();
    let status = HttpStatus.INTERNAL_SERVER_ERROR;
    let detail = 'The server failed to handle the request; the error is in its log.';
    if (exception instanceof HttpException) {
      status = exception.getStatus();
      const body = exception.getResponse();
      const message = typeof body === 'string' ? body : (body as { message?: string | string[] }).message;
      detail = Array.isArray(message) ? message.join('; ') : (message ?? exception.message);
    } else if (exception instanceof RetryableError) {
      // A server the request needs (NATS, the database) is away: nothing was accepted, try again.
      status = HttpStatus.SERVICE_UNAVAILABLE;
      detail = `${exception.message}; nothing was accepted: send the request again in a few seconds`;
      res.setHeader('Retry-After', '5');
      this.logger.warn({ err: exception.message, path: req.url }, 'request refused: a server is unavailable');
    } else {
      this.logger.error(
        { err: exception instanceof Error ? exception.stack : String(exception), path: req.url },
        'request failed',
      );
    }
    res
      .status(status)
      .type('application/problem+json')
      .json({
        type: 'about:blank',
        title: HttpStatus[status]?.replace(/_/g, ' ').toLowerCase() ?? 'error',
        status,
        detail,
        instance: req.originalUrl ?? req.url,
      });
  }
}
