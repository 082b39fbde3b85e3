/** Paths of the external tools, as scripts/provision.sh found them (.tools.json). */
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { z } from 'zod';

/** etcd release lines the tests can run: Debian's 3.4, and 3.5 and 3.6 built by provision.sh. */
export const ETCD_LINES = ['3.4', '3.5', '3.6'] as const;
export type EtcdLine = (typeof ETCD_LINES)[number];

const etcdReleaseSchema = z.object({
  version: z.string(),
  etcd: z.string(),
  etcdctl: z.string(),
  /** Absent for Debian's 3.4, which has no etcdutl. */
  etcdutl: z.string().optional(),
});

const toolsSchema = z.object({
  temporal: z.string(),
  temporalVersion: z.string(),
  etcd: z.string(),
  etcdctl: z.string(),
  bwrap: z.string(),
  /** Debian's openssh-server and sudo, for the admin node of the PKI copy (SPEC A2). */
  sshd: z.string().optional(),
  sudo: z.string().optional(),
  /** Debian's chromium, for the Web UI test (playwright-core drives it; it downloads no browser). */
  chromium: z.string(),
  etcdReleases: z.partialRecord(z.enum(ETCD_LINES), etcdReleaseSchema),
});
export type Tools = z.infer<typeof toolsSchema>;
export type EtcdRelease = z.infer<typeof etcdReleaseSchema> & { line: EtcdLine };

const TOOLS_FILE = fileURLToPath(new URL('../../.tools.json', import.meta.url));
let tools: Tools | undefined;

export function readTools(): Tools {
  if (!tools) {
    let text: string;
    try {
      text = readFileSync(TOOLS_FILE, 'utf8');
    } catch {
      throw new Error(
        `${TOOLS_FILE} is missing: run 'npm run provision' (npm test runs it first).`,
      );
    }
    const parsed = toolsSchema.safeParse(JSON.parse(text));
    if (!parsed.success) {
      throw new Error(
        `${TOOLS_FILE} is out of date (${z.prettifyError(parsed.error)}): run 'npm run provision'.`,
      );
    }
    tools = parsed.data;
  }
  return tools;
}

/** The etcd release lines provisioned on this machine, oldest first. */
export function etcdLines(): EtcdLine[] {
  const releases = readTools().etcdReleases;
  return ETCD_LINES.filter((line) => releases[line] !== undefined);
}

/** Paths and exact version of one etcd release line's binaries (3.5 and 3.6 have etcdutl). */
export function etcdRelease(line: '3.5' | '3.6'): EtcdRelease & { etcdutl: string };
export function etcdRelease(line: EtcdLine): EtcdRelease;
export function etcdRelease(line: EtcdLine): EtcdRelease {
  const release = readTools().etcdReleases[line];
  if (!release || (line !== '3.4' && !release.etcdutl)) {
    throw new Error(
      `etcd ${line} (with etcdutl from 3.5 on) is not in ${TOOLS_FILE} (it has ${etcdLines().join(', ') || 'none'}): run 'npm run provision'.`,
    );
  }
  return { line, ...release };
}

/**
 * The etcd release line the version matrix runs the backup, restore and crash suites
 * against: `ETCD_LINE` (3.4, 3.5 or 3.6), Debian's 3.4 when unset. `npm test` runs those
 * files once more per newer line (`npm run test:etcd-lines`).
 */
export function etcdLineUnderTest(): EtcdLine {
  const line = process.env.ETCD_LINE ?? '3.4';
  if (!(ETCD_LINES as readonly string[]).includes(line))
    throw new Error(`ETCD_LINE=${line}: must be one of ${ETCD_LINES.join(', ')}`);
  return line as EtcdLine;
}

/**
 * The options of a test that runs on the default line only: a leg of a newer line runs
 * each suite's representative cases (a backup, a three-member restore, the crash test),
 * and reports the others as skipped with this reason, to keep CI short.
 */
export function defaultLineOnly(): { skip?: string } {
  const line = etcdLineUnderTest();
  return line === '3.4'
    ? {}
    : { skip: `etcd ${line} leg: the matrix runs this suite's representative cases only` };
}
