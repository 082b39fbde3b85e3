/**
 * Recording workflow histories for test/workflows/replay.test.ts:
 * `RECORD_HISTORIES=<date>-<what changed> node --import tsx --test test/e2e/restore-control.test.ts test/e2e/admin-backup.test.ts`
 * writes the history of each recorded run to test/histories/<date>-<what changed>/<name>.json
 * (the JSON of `temporal workflow show --output json`). Without the variable, nothing is written.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { WorkflowHandle } from '@temporalio/client';
import { type History, historyToJSON } from '@temporalio/common/lib/proto-utils.js';
import type * as Proto from '@temporalio/proto';

const HISTORIES = fileURLToPath(new URL('../histories/', import.meta.url));
/** RECORD_HISTORIES=<date>-<what changed>: the folder of test/histories/ this run records into. */
const RECORDING = process.env.RECORD_HISTORIES ?? '';

/**
 * The SDK's historyToJSON: the proto3 JSON of `temporal workflow show --output json`.
 * In this install it throws "type must be a Type": npm nested a copy of protobufjs 8 in each
 * of @temporalio/common, /proto and /worker (grpc's proto-loader keeps protobufjs 7 at the
 * top), and protojson's instanceof check in common's copy rejects the types built by proto's.
 * Then the same conversion runs with the copy @temporalio/proto's types were built with.
 */
function historyJson(history: History): string {
  try {
    return historyToJSON(history);
  } catch (error) {
    if (!(error instanceof TypeError)) throw error;
    const load = createRequire(import.meta.url);
    const proto = load('@temporalio/proto') as typeof Proto & {
      lookupType(name: string): unknown;
    };
    const { toJson } = createRequire(load.resolve('@temporalio/proto'))(
      'protobufjs/ext/protojson',
    ) as { toJson(type: unknown, message: unknown): unknown };
    const type = proto.lookupType('temporal.api.history.v1.History');
    const message = proto.temporal.api.history.v1.History.fromObject(history);
    return JSON.stringify(toJson(type, message), null, 2);
  }
}

/** Writes a recorded history into a new recording folder; never over an earlier one. */
export async function recordHistory(name: string, handle: WorkflowHandle): Promise<void> {
  if (RECORDING === '') return;
  const dir = join(HISTORIES, RECORDING);
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, `${name}.json`), historyJson(await handle.fetchHistory()), {
    flag: 'wx',
  });
}
