import { Controller, Get, HttpCode, Inject, Res } from '@nestjs/common';
import { ApiBearerAuth, ApiExcludeController, ApiOperation, ApiTags } from '@nestjs/swagger';
import { CurrentPrincipal, Public } from '@iot/auth-guard';
import type { Principal } from '@iot/contracts';
import type { Response } from 'express';
import type { IotMetrics } from '@iot/observability';
import { METRICS, READINESS, type Readiness } from './runtime';

@ApiExcludeController()
@Public()
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

/** Every service answers who a token says its bearer is: a quick check of a token against it. */
@ApiTags('access')
@ApiBearerAuth()
@Controller('v1/principal')
export class PrincipalController {
  @Get()
  @ApiOperation({ summary: 'Who the access token says you are, as this service verifies it' })
  principal(@CurrentPrincipal() p: Principal) {
    return { user: p.userId, tenant: p.tenant, role: p.role, platform_admin: p.platformAdmin };
  }
}
