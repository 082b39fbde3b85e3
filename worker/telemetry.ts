/**
 * What the worker process tells the world: logs as JSON lines on stdout (one object per
 * line: time, level, message, and the workflow and activity ids the SDK attaches), the
 * Temporal runtime's Prometheus endpoint, and the gauge of restores waiting for an
 * operator, read from Temporal itself so it survives restarts and counts each restore once.
 *
 * The SDK's Runtime logger does the work (a DefaultLogger with a JSON log function): no
 * logging library, and the SDK's own lines, the Rust core's (forwarded) and ours come out
 * the same way. Metrics go through the SDK's metric meter, so the project's figures are on
 * the same endpoint as Temporal's.
 */
import { ApplicationFailure, type LogLevel, type LogMetadata } from '@temporalio/common';
import { DefaultLogger, type LogEntry, Runtime } from '@temporalio/worker';
import { METRICS } from '../workflows/contract/index.js';

/** Fields the SDK attaches that a person reading logs does not need (the token is a capability). */
const DROPPED = new Set(['taskToken']);

/** One log entry as one JSON line. */
export function jsonLogLine(entry: LogEntry): string {
  const meta: LogMetadata = {};
  for (const [key, value] of Object.entries(entry.meta ?? {})) {
    if (!DROPPED.has(key)) meta[key] = value;
  }
  const time = new Date(Number(entry.timestampNanos / 1_000_000n)).toISOString();
  return JSON.stringify({ time, level: entry.level, message: entry.message, ...meta }, (_k, v) =>
    jsonValue(v),
  );
}

function jsonValue(value: unknown): unknown {
  if (typeof value === 'bigint') return value.toString();
  if (value instanceof Error) {
    return {
      name: value.name,
      message: value.message,
      ...(value instanceof ApplicationFailure && value.type ? { type: value.type } : {}),
      ...(value.cause instanceof Error ? { cause: jsonValue(value.cause) } : {}),
      stack: value.stack,
    };
  }
  return value;
}

export interface TelemetryOptions {
  logLevel: LogLevel;
  /** `host:port` of the Prometheus endpoint (`/metrics`); none if absent. */
  metricsAddress?: string;
  /** Where log lines go; stdout by default. */
  write?: (line: string) => void;
}

/** Installs the Runtime: JSON logs, and the Prometheus endpoint when asked. Once per process. */
export function installTelemetry(options: TelemetryOptions): DefaultLogger {
  const write = options.write ?? ((line: string) => process.stdout.write(`${line}\n`));
  const logger = new DefaultLogger(options.logLevel, (entry) => write(jsonLogLine(entry)));
  Runtime.install({
    logger,
    telemetryOptions: {
      logging: { filter: { core: 'WARN', other: 'ERROR' }, forward: {} },
      ...(options.metricsAddress
        ? {
            metrics: {
              prometheus: {
                bindAddress: options.metricsAddress,
                countersTotalSuffix: true,
                useSecondsForDurations: true,
                // A restore takes minutes to hours; the default buckets are for milliseconds.
                histogramBucketOverrides: {
                  [METRICS.restoreDuration]: [60, 120, 300, 600, 1200, 1800, 3600, 7200, 14400],
                },
              },
            },
          }
        : {}),
    },
  });
  return logger;
}
