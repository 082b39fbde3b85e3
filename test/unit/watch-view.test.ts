/**
 * `watch`'s three views of a workflow's progress: plain lines (what changed, as before, for
 * pipes and logs), JSON lines (one per change, for scripts), and on a terminal the steps as
 * a list with a progress bar per copy (drawn into a fake terminal here).
 */
import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { test } from 'node:test';
import { stripVTControlCharacters } from 'node:util';
import { jsonView, plainView, terminalView } from '../../client/cli/watch-view.js';
import type { WatchSnapshot } from '../../client/watch.js';
import type { ProgressView } from '../../workflows/progress.js';

function view(step: string, log: string[], facts: Record<string, string> = {}): ProgressView {
  return {
    operation: 'backup',
    userClusterName: 'uc1',
    step,
    outcome: 'running',
    members: {},
    facts,
    log,
    problems: [],
  };
}

const copy = { activityId: '7', step: 'copy kube-etcd-0:/snapshot.db', totalBytes: 8 << 20 };
const snapshots: WatchSnapshot[] = [
  { status: 'RUNNING', copies: [], progress: view('B2 save', ['10:00:00 B2 save']) },
  {
    status: 'RUNNING',
    copies: [{ ...copy, bytesDone: 2 << 20 }],
    progress: view('B3 copy', ['10:00:00 B2 save', '10:00:01 B3 copy']),
  },
  {
    status: 'RUNNING',
    copies: [{ ...copy, bytesDone: 6 << 20 }],
    progress: view('B3 copy', ['10:00:00 B2 save', '10:00:01 B3 copy']),
  },
  {
    status: 'COMPLETED',
    copies: [],
    progress: view(
      'backup b1 stored and verified',
      ['10:00:00 B2 save', '10:00:01 B3 copy', '10:00:05 backup b1 stored and verified'],
      { copied: '8388608 bytes' },
    ),
  },
];

test('plain: a line per new step or fact', () => {
  const lines: string[] = [];
  const v = plainView((l) => lines.push(l));
  for (const s of snapshots) v.show(s);
  v.end();
  assert.deepEqual(lines, [
    'step: B2 save',
    'step: B3 copy',
    'step: backup b1 stored and verified',
    '  copied: 8388608 bytes',
  ]);
});

test('JSON: one object per change, copies included', () => {
  const lines: string[] = [];
  const v = jsonView((l) => lines.push(l));
  for (const s of [...snapshots.slice(0, 2), snapshots[1] as WatchSnapshot, ...snapshots.slice(2)])
    v.show(s);
  const events = lines.map(
    (l) => JSON.parse(l) as { event: string; step: string; copies: unknown[] },
  );
  assert.equal(events.length, 4, 'an unchanged snapshot prints nothing');
  assert.ok(events.every((e) => e.event === 'progress'));
  assert.deepEqual(events[2]?.copies, [{ ...copy, bytesDone: 6 << 20 }]);
});

test("backupAll: a line per part's new state, and the parts in JSON", () => {
  const all = (parts: Record<string, string>): WatchSnapshot => ({
    status: 'RUNNING',
    copies: [],
    progress: { ...view('parts', []), operation: 'backup-all', parts },
  });
  const lines: string[] = [];
  const json: string[] = [];
  const plain = plainView((l) => lines.push(l));
  const j = jsonView((l) => json.push(l));
  for (const s of [
    all({ 'admin a1': 'running', uc1: 'waiting' }),
    all({ 'admin a1': 'stored b1', uc1: 'running' }),
  ]) {
    plain.show(s);
    j.show(s);
  }
  assert.deepEqual(lines, [
    'step: parts',
    '  part admin a1: running',
    '  part uc1: waiting',
    '  part admin a1: stored b1',
    '  part uc1: running',
  ]);
  assert.deepEqual((JSON.parse(json[1] ?? '{}') as { parts: unknown }).parts, {
    'admin a1': 'stored b1',
    uc1: 'running',
  });
});

test('terminal: the steps as a list and a bar for the copy', () => {
  let screen = '';
  const terminal = Object.assign(
    new Writable({
      write(chunk, _encoding, done) {
        screen += chunk.toString();
        done();
      },
    }),
    { isTTY: true, columns: 120, rows: 40 },
  ) as unknown as NodeJS.WriteStream;
  const v = terminalView(terminal);
  for (const s of snapshots) {
    v.show(s);
  }
  v.end();
  const text = stripVTControlCharacters(screen);
  for (const entry of [
    '• 10:00:00 B2 save',
    '• 10:00:01 B3 copy',
    '• 10:00:05 backup b1 stored and verified',
  ])
    assert.equal(text.split(entry).length - 1, 1, `${entry} listed once`);
  assert.match(text, /25% 2\.0 MiB\/8\.0 MiB copy kube-etcd-0:\/snapshot\.db/);
  assert.match(text, /75% 6\.0 MiB\/8\.0 MiB/);
});
