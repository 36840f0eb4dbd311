/**
 * Model tests and branches in the sidebar, on the churn model start_lab.py made: churn/1 is
 * main's head with one of its two test cases failing; churn/2 heads the branch "experiment"
 * and never ran the cases it inherited.
 */
import { expect, test } from '@jupyterlab/galata';

test('test badges, branch heads and the merge insert', async ({ page }) => {
  const tab = page.locator('.jp-SideBar.jp-mod-left [data-id="nbmodel-sidebar"]');
  await expect(tab).toBeVisible();
  if ((await tab.getAttribute('aria-selected')) !== 'true') {
    await tab.click();
  }
  const panel = page.locator('#nbmodel-sidebar');
  const model = panel.locator('[data-model="churn"]');
  await expect(model).toBeVisible({ timeout: 60000 });
  await model.locator('.jp-nbmodel-model-head').click();

  const v1 = model.locator('[data-ref="churn/1"]');
  const v2 = model.locator('[data-ref="churn/2"]');
  await expect(v1.locator('.jp-nbmodel-tests')).toHaveText('tests 1/2');
  await expect(v1.locator('.jp-nbmodel-tests')).toHaveAttribute('data-tests', 'failed');
  await expect(v2.locator('.jp-nbmodel-tests')).toHaveText('tests not run');
  await expect(v2.locator('.jp-nbmodel-tests')).toHaveAttribute('data-tests', 'stale');
  await expect(v1.locator('.jp-nbmodel-branch')).toHaveText(['⎇ main']);
  await expect(v2.locator('.jp-nbmodel-branch')).toHaveText(['⎇ experiment']);

  const branches = model.locator('.jp-nbmodel-branches');
  await expect(branches.locator('[data-branch="main"]')).toContainText('main → v1');
  await expect(branches.locator('[data-branch="main"] button')).toHaveCount(0);
  const experiment = branches.locator('[data-branch="experiment"]');
  await expect(experiment).toContainText('experiment → v2 · 1 ahead');

  // The merge goes into a notebook in the folder whose store the sidebar shows.
  await page.sidebar.openTab('filebrowser');
  // openHomeDirectory does nothing (and says false) before the file browser shows its breadcrumbs.
  await expect(page.locator('.jp-FileBrowser .jp-BreadCrumbs-home')).toBeVisible();
  expect(await page.filebrowser.openHomeDirectory()).toBe(true);
  await page.notebook.createNew('branches.ipynb');
  await tab.click();
  await experiment.locator('button', { hasText: 'merge' }).click();
  const cell = page.locator('.jp-NotebookPanel .jp-Cell').nth(1);
  await expect(cell).toContainText('%model_merge churn experiment --into main --eval X_test y_test');
  await expect(cell).toContainText('# X_test:');
});
