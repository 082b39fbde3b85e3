/**
 * No global `sync` in anything run in a pod (SPEC review, part 5): on a shared admin node a
 * bare `sync` flushes every file system of the node, and can take minutes there. Every
 * `sync` in the shell the activities send names what it flushes.
 */
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';

const ACTIVITIES = fileURLToPath(new URL('../../activities/', import.meta.url));

function sources(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory()
      ? sources(join(dir, e.name))
      : e.name.endsWith('.ts')
        ? [join(dir, e.name)]
        : [],
  );
}

/** `sync` as a command with nothing after it: end of line, `;`, `&&`, `||`, or a closing quote. */
const BARE_SYNC = /(^|[\s;&|('"`])sync(\s*($|;|&&|\|\|)|['"`)])/m;

test('every sync sent to a pod names the files it flushes', () => {
  const bare: string[] = [];
  for (const file of sources(ACTIVITIES)) {
    readFileSync(file, 'utf8')
      .split('\n')
      .forEach((line, i) => {
        // Comments may say "global sync"; code may not run one.
        if (/^\s*(\*|\/\/|\/\*)/.test(line)) return;
        if (BARE_SYNC.test(line))
          bare.push(`${file.slice(ACTIVITIES.length)}:${i + 1}: ${line.trim()}`);
      });
  }
  assert.deepEqual(bare, []);
  assert.ok(BARE_SYNC.test("sh -c 'sync'") && BARE_SYNC.test('mv a b; sync; echo ok'));
  assert.ok(!BARE_SYNC.test('sync "$D"') && !BARE_SYNC.test('  sync "$O" "$D"'));
});
