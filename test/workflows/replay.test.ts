/**
 * Replay: the histories of real runs, recorded in test/histories/ (see how to re-record in
 * test/e2e/restore-control.test.ts), are replayed against the current workflow code. A change to
 * a workflow that would make a running backup or restore fail when the worker is upgraded
 * (a DeterminismViolationError) fails this test: guard such changes with `patched()`.
 *
 * The files are the proto3 JSON of `temporal workflow show --output json` (and of the Web
 * UI's download), so a history from a real deployment can be dropped in and replayed too.
 */
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { basename, join } from 'node:path';
import { describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import {
  type History,
  historyFromJSON,
  historyToJSON,
} from '@temporalio/common/lib/proto-utils.js';
import type * as Proto from '@temporalio/proto';
import { Worker } from '@temporalio/worker';
import { DeterminismViolationError } from '@temporalio/workflow';
import { workflowsPath } from '../../worker/create-worker.js';
import '../harness/temporal.js'; // installs the quiet runtime logger

const HISTORIES = fileURLToPath(new URL('../histories/', import.meta.url));

/** The runs the histories must cover (file names without .json). */
const REQUIRED = [
  'backup-admin-cluster',
  'backup-all',
  'backup-user-cluster',
  'restore-1-member',
  'restore-cancelled-before-ponr',
  'restore-approved-signal',
];

interface ProtoJson {
  toJson(type: unknown, message: unknown): unknown;
  fromJson(type: unknown, json: unknown, options: { ignoreUnknownFields: boolean }): unknown;
}

/**
 * The SDK's historyFromJSON / historyToJSON, or, where they throw "type must be a Type"
 * (this install nests one copy of protobufjs 8 in each of @temporalio/common, /proto and
 * /worker, and common's protojson rejects types built by proto's copy), the same protojson
 * conversion done with the copy @temporalio/proto's types were built with.
 */
function codec(): { from(json: unknown): History; to(history: History): string } {
  const load = createRequire(import.meta.url);
  const proto = load('@temporalio/proto') as typeof Proto & { lookupType(name: string): unknown };
  const protojson = createRequire(load.resolve('@temporalio/proto'))(
    'protobufjs/ext/protojson',
  ) as ProtoJson;
  const type = proto.lookupType('temporal.api.history.v1.History');
  const fallback = <T>(sdk: () => T, own: () => T): T => {
    try {
      return sdk();
    } catch (error) {
      if (!(error instanceof TypeError && /type must be a Type/.test(error.message))) throw error;
      return own();
    }
  };
  return {
    from: (json) =>
      fallback(
        () => historyFromJSON(json),
        () => protojson.fromJson(type, json, { ignoreUnknownFields: true }) as History,
      ),
    to: (history) =>
      fallback(
        () => historyToJSON(history),
        () =>
          JSON.stringify(
            protojson.toJson(type, proto.temporal.api.history.v1.History.fromObject(history)),
            null,
            2,
          ),
      ),
  };
}

/**
 * One folder per recording (`<date>-<what changed>/`): histories recorded before a change
 * stay beside those recorded after it, and all of them must replay.
 */
const recordings = readdirSync(HISTORIES, { withFileTypes: true })
  .filter((d) => d.isDirectory())
  .map((d) => d.name)
  .sort();
const { from, to } = codec();
const histories = recordings.flatMap((recording) =>
  readdirSync(join(HISTORIES, recording))
    .filter((f) => f.endsWith('.json'))
    .sort()
    .map((name) => {
      const file = `${recording}/${name}`;
      const json = JSON.parse(readFileSync(join(HISTORIES, file), 'utf8')) as unknown;
      const history = from(json);
      // The id it ran with: a workflow that derives child ids from its own (backupAll)
      // replays only under it.
      const recordedId =
        history.events?.[0]?.workflowExecutionStartedEventAttributes?.workflowId ?? undefined;
      return {
        file,
        recording,
        name: basename(name, '.json'),
        workflowId: recordedId || file,
        json,
        history,
      };
    }),
);

describe('replay of recorded histories against the current workflow code', () => {
  test('every recording has the runs the histories must cover', () => {
    assert.ok(recordings.length > 0, 'test/histories/ holds no recording');
    for (const recording of recordings) {
      const names = histories.filter((h) => h.recording === recording).map((h) => h.name);
      for (const name of REQUIRED)
        assert.ok(names.includes(name), `test/histories/${recording}/${name}.json`);
    }
  });

  test('the JSON format round-trips', () => {
    for (const { file, json, history } of histories) {
      assert.deepEqual(JSON.parse(to(history)), json, file);
      const first = history.events?.[0];
      assert.ok(
        first?.workflowExecutionStartedEventAttributes,
        `${file}: starts with WorkflowExecutionStarted`,
      );
    }
  });

  test('every activity of the newest recording has a heartbeat timeout of 60-120 s', () => {
    // A worker killed in any step is noticed within it, also in short steps; the SDK sends at
    // most one heartbeat per 80% of the timeout, so below a minute throttling fights it.
    const newest = recordings.at(-1);
    for (const { file, recording, history } of histories) {
      if (recording !== newest) continue;
      for (const event of history.events ?? []) {
        const scheduled = event.activityTaskScheduledEventAttributes;
        if (!scheduled) continue;
        const s = Number(scheduled.heartbeatTimeout?.seconds ?? 0);
        assert.ok(
          s >= 60 && s <= 120,
          `${file}: ${scheduled.activityType?.name} has a heartbeat timeout of ${s} s`,
        );
      }
    }
  });

  test('every history replays without a determinism violation', {
    timeout: 10 * 60_000,
  }, async () => {
    const results = Worker.runReplayHistories(
      { workflowsPath: workflowsPath() },
      histories.map(({ workflowId, history }) => ({ workflowId, history })),
    );
    const replayed: string[] = [];
    const problems: string[] = [];
    const fileOf = new Map(histories.map((h) => [h.workflowId, h.file]));
    for await (const result of results) {
      replayed.push(result.workflowId);
      if (result.error) {
        const kind =
          result.error instanceof DeterminismViolationError
            ? 'determinism violation'
            : 'replay error';
        problems.push(`${fileOf.get(result.workflowId)}: ${kind}: ${result.error.message}`);
      }
    }
    assert.deepEqual(problems, []);
    assert.deepEqual(replayed.sort(), histories.map((h) => h.workflowId).sort());
  });

  test('a history the code does not match is reported as a determinism violation', async () => {
    // The check above would pass vacuously if replay compared nothing: a recorded restore whose
    // first activity had another type must be refused.
    const newest = recordings.at(-1);
    const original = histories.find((h) => h.recording === newest && h.name === 'restore-1-member');
    assert.ok(original);
    const json = JSON.parse(JSON.stringify(original.json)) as {
      events: Array<{
        activityTaskScheduledEventAttributes?: { activityType?: { name?: string } };
      }>;
    };
    const scheduled = json.events.find((e) => e.activityTaskScheduledEventAttributes?.activityType);
    assert.equal(
      scheduled?.activityTaskScheduledEventAttributes?.activityType?.name,
      'resolveTarget',
    );
    if (scheduled?.activityTaskScheduledEventAttributes?.activityType)
      scheduled.activityTaskScheduledEventAttributes.activityType.name = 'someOtherActivity';
    await assert.rejects(
      Worker.runReplayHistory({ workflowsPath: workflowsPath() }, from(json), 'tampered'),
      DeterminismViolationError,
    );
  });
});
