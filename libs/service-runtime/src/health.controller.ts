import { Controller, Get, HttpCode, Inject, Res } from '@nestjs/common';
import { ApiExcludeController } from '@nestjs/swagger';
import type { Response } from 'express';
import type { IotMetrics } from '@iot/observability';
import { METRICS, READINESS, type Readiness } from './runtime';

@ApiExcludeController()
@Controller()
export class HealthController {
  constructor(
    @Inject(READINESS) private readonly readiness: Readiness,
    @Inject(METRICS) private readonly metrics: IotMetrics,
  ) {}

  /** The process is alive and its event loop answers. */
  @Get('healthz')
  @HttpCode(200)
  healthz() {
    return { status: 'ok', service: this.metrics.service };
  }

  /** Its servers are reachable and its consumers attached. */
  @Get('readyz')
  async readyz(@Res() res: Response) {
    const { ready, checks } = await this.readiness.evaluate();
    res.status(ready ? 200 : 503).json({ status: ready ? 'ready' : 'not-ready', checks });
  }

  @Get('metrics')
  async prometheus(@Res() res: Response) {
    res.setHeader('Content-Type', this.metrics.contentType);
    res.send(await this.metrics.metricsText());
  }
}
