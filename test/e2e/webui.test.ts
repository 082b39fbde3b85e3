/**
 * An operator answers a restore's approval gate in the Temporal Web UI, in a real browser
 * (Debian's chromium, headless, driven by playwright-core): the Temporal CLI dev server
 * with its embedded Web UI, a worker and the simulated admin cluster with real etcd. The
 * restore (`requireApproval: true`) waits at its gate; in the UI the operator finds it in
 * the workflow list with a query on the `UserClusterName` search attribute, opens it, reads
 * its summary and current details (what the restore will destroy), approves it with the
 * UI's own "Send an Update" form (update `approveRestore`; a blank name is refused there by
 * the update's validator first), and sees it Completed.
 *
 * Screenshots of each step go to test-artifacts/webui/ (gitignored), also when a step fails.
 * Every wait is for something on the page, with generous bounds: nothing here measures time.
 */
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { type Browser, chromium, type Page } from 'playwright-core';
import { EtcdOpsClient } from '../../client/client.js';
import { type ProgressView, progressQuery } from '../../workflows/progress.js';
import { planQuery, type RestorePlan } from '../../workflows/restore/approval.js';
import { stored } from '../harness/backups.js';
import {
  simWorkerConfig,
  startTemporalTestContext,
  type TemporalTestContext,
} from '../harness/temporal.js';
import { readTools } from '../harness/tools.js';
import { type SimCluster, startSimCluster } from '../sim/index.js';

const ARTIFACTS = fileURLToPath(new URL('../../test-artifacts/webui/', import.meta.url));
/** Bounds a hang on a loaded machine; asserts nothing about speed. */
const WAIT_MS = 3 * 60_000;
const ns = 'webui-cluster';
const approver = 'sre-in-the-web-ui';

const scratch = mkdtempSync(join(tmpdir(), 'webui-'));
let sim: SimCluster;
let ctx: TemporalTestContext;
let browser: Browser;
let page: Page;
let shot = 0;

/** A full-page screenshot, numbered in the order taken. */
async function screenshot(name: string): Promise<void> {
  shot += 1;
  await page.screenshot({
    path: join(ARTIFACTS, `${String(shot).padStart(2, '0')}-${name}.png`),
    fullPage: true,
  });
}

/** Polls `check` (a page or API read) until it holds, bounded by WAIT_MS. */
async function until(what: string, check: () => Promise<boolean>, everyMs = 1_000): Promise<void> {
  const deadline = Date.now() + WAIT_MS;
  while (!(await check().catch(() => false))) {
    if (Date.now() > deadline) throw new Error(`gave up waiting for ${what}`);
    await sleep(everyMs);
  }
}

/**
 * Waits until `text` shows in the workflow's user metadata: the Web UI renders summary,
 * details and current details (Markdown) each in a sandboxed iframe of its own.
 */
async function waitForMetadata(text: string): Promise<void> {
  await until(`"${text}" in the user metadata`, async () => {
    for (const frame of page.frames()) {
      if (frame === page.mainFrame()) continue;
      if ((await frame.getByText(text, { exact: false }).count()) > 0) return true;
    }
    return false;
  });
}

/** The status badge in the header of a workflow's page. */
function status(name: 'Running' | 'Completed') {
  return page
    .locator('header')
    .filter({ has: page.getByTestId('workflow-id-heading') })
    .getByText(name, { exact: true });
}

before(async () => {
  rmSync(ARTIFACTS, { recursive: true, force: true });
  mkdirSync(ARTIFACTS, { recursive: true });
  sim = await startSimCluster({ members: 1, userClusterName: ns, adminEtcd: false });
  ctx = await startTemporalTestContext('webui', {
    config: simWorkerConfig(sim, join(scratch, 'backups')),
    ui: true,
  });
  browser = await chromium.launch({
    executablePath: readTools().chromium,
    headless: true,
    // As root (CI runs as root) Chromium's sandbox cannot start.
    args: ['--no-sandbox'],
  });
  page = await browser.newPage({ viewport: { width: 1600, height: 1000 } });
  page.setDefaultTimeout(WAIT_MS);
});

after(async () => {
  await browser?.close();
  await ctx?.teardown();
  await sim?.stop();
  rmSync(scratch, { recursive: true, force: true });
});

test('a restore waiting for approval is found, read and approved in the Web UI, and completes', {
  timeout: 20 * 60_000,
}, async (t) => {
  const ui = ctx.server.uiUrl;
  assert.ok(ui, 'the dev server serves its Web UI');
  const client = new EtcdOpsClient(ctx.env.client, ctx.taskQueue);
  await sim.putKey('/test/webui', 'in the backup');
  const backup = stored(await (await client.startBackup({ userClusterName: ns })).result());
  const handle = await client.startRestore({
    userClusterName: ns,
    gkeOnPremVersion: '1.5.0-gke.0',
    backup: { backupId: backup.id },
    requireApproval: true,
  });
  let plan: RestorePlan | undefined;
  await until('the restore to reach its approval gate', async () => {
    plan = await handle.query(planQuery);
    return plan !== undefined;
  });
  assert.ok(plan && plan.destroys.length > 0);

  try {
    // The workflow list, filtered by a query on the project's search attributes.
    await page.goto(`${ui}/namespaces/default/workflows`);
    await page.getByTestId('toggle-manual-query').click();
    const query = page.getByTestId('manual-search-input');
    await query.fill(`UserClusterName="${ns}" AND EtcdOperation="restore"`);
    await query.press('Enter');
    const row = page.getByRole('link', { name: handle.workflowId, exact: true });
    await until('the restore in the filtered list', async () => {
      if (await row.isVisible()) return true;
      await page.reload();
      return false;
    });
    // Only the restore matches: not its backup, not the cluster lock.
    await until(
      'the list to hold the restore only',
      async () => (await page.getByText(/etcd-(backup|lock)-/).count()) === 0,
    );
    await screenshot('list-filtered-by-user-cluster');

    // Its page: summary, details and current details (the plan: what will be destroyed).
    await row.click();
    await page.getByRole('heading', { name: handle.workflowId }).waitFor();
    await status('Running').waitFor();
    await page.getByTestId('user-metadata-tab').filter({ visible: true }).click();
    await waitForMetadata(`Restore etcd of user cluster ${ns} from ${backup.id}`);
    await waitForMetadata('Diagnose and fix the cluster before restoring');
    await waitForMetadata('Now: waiting for approval');
    for (const destroyed of plan.destroys) await waitForMetadata(`Will destroy: ${destroyed}`);
    await screenshot('waiting-for-approval-summary-and-details');

    // The UI's own update form: approveRestore with who approves.
    await page.getByRole('button', { name: 'More Actions' }).click();
    await page.getByRole('menuitem', { name: 'Send an Update' }).filter({ visible: true }).click();
    const dialog = page.getByTestId('update-confirmation-modal').filter({ visible: true });
    await dialog.getByTestId('update-select-button').click();
    await dialog.getByRole('option', { name: 'approveRestore' }).click();
    const data = dialog.locator('[contenteditable="true"][data-language="json"]').first();
    const typeData = async (value: object) => {
      await data.click();
      await page.keyboard.press('ControlOrMeta+A');
      // insertText: the JSON as one paste, so the editor's bracket closing adds nothing.
      await page.keyboard.insertText(JSON.stringify(value));
    };
    // An approval that names nobody is refused by the update's validator, shown in the form.
    await typeData({ approvedBy: ' ' });
    await dialog.getByTestId('confirm-modal-button').click();
    await dialog.getByText('approvedBy: must name who decides').first().waitFor();
    await screenshot('approval-refused-by-the-validator');
    await typeData({ approvedBy: approver });
    await screenshot('approval-update-form');
    await dialog.getByTestId('confirm-modal-button').click();
    await dialog.waitFor({ state: 'hidden' });

    // The restore runs to its end; the page shows it Completed, and its last details.
    await until(
      'the page to show the restore Completed',
      async () => {
        await page.reload();
        await page.getByRole('heading', { name: handle.workflowId }).waitFor();
        return status('Completed').isVisible();
      },
      5_000,
    );
    await waitForMetadata(`restored from ${backup.id} and verified`);
    await screenshot('restore-completed-details');
    await page.goto(`${ui}/namespaces/default/workflows/${handle.workflowId}`);
    await page.getByText('"outcome"', { exact: false }).first().waitFor();
    await screenshot('restore-completed-result');
  } catch (error) {
    await screenshot('failure').catch(() => undefined);
    t.diagnostic(`screenshots in ${ARTIFACTS}`);
    throw error;
  }

  // What the UI showed is what happened: restored, and approved by the name typed there.
  const result = await handle.result();
  assert.equal(result.outcome, 'restored');
  assert.equal((await handle.describe()).status.name, 'COMPLETED');
  const progress: ProgressView = await handle.query(progressQuery);
  assert.ok(
    progress.log.some((l) => l.includes(`approved by ${approver}`)),
    progress.log.join('\n'),
  );
  assert.equal(await sim.getKey('/test/webui'), 'in the backup');
  t.diagnostic(`screenshots in ${ARTIFACTS}`);
});
