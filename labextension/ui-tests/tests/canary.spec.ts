/**
 * A canary's split in the sidebar, live: fraud/1 deployed from a notebook's kernel on the store
 * of the folder JupyterLab started in, fraud/2 as the candidate, then stopped.
 */
import { expect, test } from '@jupyterlab/galata';

const START = [
  'import nbmodel',
  'nbmodel.deploy("fraud/1")',
  // A long step: the canary stays at 25% while the test looks.
  'nbmodel.canary("fraud/2", steps="25,100", interval="10m")',
  'print("started")'
].join('\n');

const STOP = ['nbmodel.canary("fraud/2", stop=True)', 'print("ended")'].join('\n');

const CLEAN = ['nbmodel.stop("fraud")', 'print("stopped")'].join('\n');

test('a running canary shows its split, and how it ended', async ({ page }) => {
  test.setTimeout(300000);
  await page.sidebar.openTab('filebrowser');
  // openHomeDirectory does nothing (and says false) before the file browser shows its breadcrumbs.
  await expect(page.locator('.jp-FileBrowser .jp-BreadCrumbs-home')).toBeVisible();
  expect(await page.filebrowser.openHomeDirectory()).toBe(true);
  await page.notebook.createNew('canary.ipynb');
  const tab = page.locator('.jp-SideBar.jp-mod-left [data-id="nbmodel-sidebar"]');
  const panel = page.locator('#nbmodel-sidebar');
  const section = panel.locator('section[aria-label="Deployments"]');
  if ((await tab.getAttribute('aria-selected')) !== 'true') {
    await tab.click();
  }
  await expect(panel.locator('[data-model="fraud"]')).toBeVisible({ timeout: 60000 });
  if ((await section.count()) === 0) {
    test.skip(true, 'nbmodel.serving is not part of this nbmodel');
  }

  await page.notebook.setCell(0, 'code', START);
  await page.notebook.runCell(0);
  try {
    await expect(page.locator('.jp-NotebookPanel .jp-Cell').nth(0)).toContainText('started', {
      timeout: 180000
    });
    const row = section.locator('[data-deployment="fraud@production"]');
    const rollout = row.locator('.jp-nbmodel-rollout');
    // The panel refreshes every 5 s while visible: no click needed.
    await expect(rollout).toHaveText('fraud/1 75% · fraud/2 25% canary', { timeout: 30000 });
    await expect(rollout).toHaveAttribute('data-rollout', 'running');
    await expect(row.locator('[role="meter"]')).toHaveAttribute('aria-valuenow', '25');

    await page.notebook.setCell(0, 'code', STOP);
    await page.notebook.runCell(0);
    await expect(page.locator('.jp-NotebookPanel .jp-Cell').nth(0)).toContainText('ended', {
      timeout: 60000
    });
    await expect(rollout).toContainText('fraud/2 canary stopped', { timeout: 30000 });
    await expect(rollout).toHaveAttribute('data-rollout', 'ended');
    await expect(row.locator('[role="meter"]')).toHaveCount(0);
  } finally {
    // Stop the server whatever failed above.
    await page.notebook.setCell(0, 'code', CLEAN);
    await page.notebook.runCell(0);
    await expect(page.locator('.jp-NotebookPanel .jp-Cell').nth(0)).toContainText('stopped', {
      timeout: 60000
    });
  }
});
