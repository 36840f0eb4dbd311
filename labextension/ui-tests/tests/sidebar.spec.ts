/**
 * The Models sidebar in a real JupyterLab, in headless Chromium, on a store that start_lab.py
 * filled with iris/1 and iris/2 (production moved from 1 to 2): the mlflow.db of the folder
 * JupyterLab started in.
 */
import { expect, test } from '@jupyterlab/galata';
import * as fs from 'fs';
import * as path from 'path';

const SCREENSHOTS = path.resolve(__dirname, '..', 'screenshots');

test.describe.configure({ mode: 'serial' });

async function openSidebar(page: any) {
  const tab = page.locator('.jp-SideBar.jp-mod-left [data-id="nbmodel-sidebar"]');
  await expect(tab).toBeVisible();
  if ((await tab.getAttribute('aria-selected')) !== 'true') {
    await tab.click();
  }
  const panel = page.locator('#nbmodel-sidebar');
  await expect(panel).toBeVisible();
  return panel;
}

test('the sidebar lists, rolls back and inserts magics', async ({ page }) => {
  const panel = await openSidebar(page);

  // The store and its model.
  // The first load starts MLflow in the server: give it time.
  await expect(panel.locator('.jp-nbmodel-store-uri')).toContainText('notebooks/mlflow.db', {
    timeout: 60000
  });
  const model = panel.locator('[data-model="iris"]');
  await expect(model).toBeVisible();
  await expect(model.locator('.jp-nbmodel-model-head')).toContainText('v2');
  await expect(model.locator('.jp-nbmodel-model-head')).toContainText('production→2');

  // Both versions, newest first, with their messages, metrics and aliases.
  await model.locator('.jp-nbmodel-model-head').click();
  const v2 = model.locator('[data-ref="iris/2"]');
  const v1 = model.locator('[data-ref="iris/1"]');
  await expect(v2).toBeVisible();
  await expect(v1).toBeVisible();
  await expect(v2).toContainText('stronger regularisation');
  await expect(v1).toContainText('baseline logistic regression');
  await expect(v2).toContainText('accuracy');
  await expect(v2.locator('.jp-nbmodel-alias')).toHaveText(['production']);
  await expect(v1.locator('.jp-nbmodel-alias')).toHaveCount(0);
  const order = await model.locator('.jp-nbmodel-version').evaluateAll(els =>
    els.map(e => e.getAttribute('data-ref'))
  );
  expect(order).toEqual(['iris/2', 'iris/1']);

  fs.mkdirSync(SCREENSHOTS, { recursive: true });
  await panel.screenshot({ path: path.join(SCREENSHOTS, 'sidebar.png') });

  // Roll production back through the confirmation dialog.
  await model.locator('[data-alias="production"] button', { hasText: 'roll back…' }).click();
  const dialog = page.locator('.jp-Dialog');
  await expect(dialog).toBeVisible();
  await expect(dialog).toContainText('iris@production points to iris/2');
  await dialog.locator('input[name="message"]').fill('v2 misbehaves in production');
  await dialog.locator('.jp-Dialog-button.jp-mod-warn').click();
  await expect(dialog).toHaveCount(0);

  await expect(panel.locator('.jp-nbmodel-notice')).toContainText(
    'iris@production rolled back from iris/2 to iris/1'
  );
  await expect(v1.locator('.jp-nbmodel-alias')).toHaveText(['production']);
  await expect(v2.locator('.jp-nbmodel-alias')).toHaveCount(0);
  await expect(model.locator('.jp-nbmodel-model-head')).toContainText('production→1');

  // Cancelling a dialog changes nothing.
  await v2.locator('button', { hasText: 'retire…' }).click();
  await expect(dialog).toBeVisible();
  await dialog.locator('.jp-Dialog-button.jp-mod-reject').click();
  await expect(dialog).toHaveCount(0);
  await expect(v2.locator('.jp-nbmodel-retired')).toHaveCount(0);

  // Insert magics into a new notebook's new cells.
  // In the folder whose store the sidebar shows: the sidebar follows the active notebook's
  // folder, and Galata's own per-test folder has no store.
  await page.sidebar.openTab('filebrowser');
  // openHomeDirectory does nothing (and says false) before the file browser shows its breadcrumbs.
  await expect(page.locator('.jp-FileBrowser .jp-BreadCrumbs-home')).toBeVisible();
  expect(await page.filebrowser.openHomeDirectory()).toBe(true);
  await page.notebook.createNew('sidebar.ipynb');
  await openSidebar(page);
  await v2.locator('button', { hasText: 'diff v1' }).click();
  await expect(page.locator('.jp-NotebookPanel .jp-Cell')).toHaveCount(2);
  // The new notebook never loaded nbmodel: the insert does it first.
  await expect(page.locator('.jp-NotebookPanel .jp-Cell').nth(1)).toContainText(
    '%load_ext nbmodel%model_diff iris/1 iris/2'
  );

  await openSidebar(page);
  await v2.locator('button', { hasText: 'checkout' }).click();
  await expect(page.locator('.jp-NotebookPanel .jp-Cell')).toHaveCount(3);
  const third = page.locator('.jp-NotebookPanel .jp-Cell').nth(2);
  await expect(third).toContainText('%model_checkout iris/2 --as iris');
  await expect(third).not.toContainText('%load_ext');

  // The whole window, for the README.
  await openSidebar(page);
  await page.screenshot({ path: path.join(SCREENSHOTS, 'lab-with-sidebar.png') });
});

test('versions page past 50', async ({ page }) => {
  const panel = await openSidebar(page);
  const model = panel.locator('[data-model="wine"]');
  await expect(model.locator('.jp-nbmodel-model-head')).toContainText('v55', { timeout: 60000 });
  await model.locator('.jp-nbmodel-model-head').click();
  await expect(model.locator('.jp-nbmodel-version')).toHaveCount(50);
  await expect(model.locator('.jp-nbmodel-version').first()).toHaveAttribute('data-ref', 'wine/55');
  const more = model.locator('.jp-nbmodel-more');
  await expect(more).toHaveText('Show more (50 of 55)');
  await more.click();
  await expect(model.locator('.jp-nbmodel-version')).toHaveCount(55);
  await expect(model.locator('.jp-nbmodel-version').last()).toHaveAttribute('data-ref', 'wine/1');
  await expect(more).toHaveCount(0);
  // A refresh keeps every loaded page.
  await panel.locator('.jp-nbmodel-refresh').click();
  await expect(panel.locator('.jp-nbmodel-updated')).toContainText('updated');
  await expect(model.locator('.jp-nbmodel-version')).toHaveCount(55);
  // Collapse it again so that the other tests see the same panel.
  await model.locator('.jp-nbmodel-model-head').click();
});

test('a refused action says why and changes nothing', async ({ page }) => {
  const panel = await openSidebar(page);
  const model = panel.locator('[data-model="iris"]');
  if ((await model.locator('.jp-nbmodel-model-head').getAttribute('aria-expanded')) !== 'true') {
    await model.locator('.jp-nbmodel-model-head').click();
  }
  // iris/1 holds production now: retiring it is refused by the core.
  const v1 = model.locator('[data-ref="iris/1"]');
  await v1.locator('button', { hasText: 'retire…' }).click();
  const dialog = page.locator('.jp-Dialog');
  await dialog.locator('.jp-Dialog-button.jp-mod-warn').click();
  await expect(page.locator('.jp-Dialog')).toContainText('holds the alias production');
  await page.locator('.jp-Dialog .jp-Dialog-button').last().click();
  await expect(v1.locator('.jp-nbmodel-retired')).toHaveCount(0);

  // The panel follows the theme: JupyterLab's CSS variables only.
  const light = await panel.evaluate(el => getComputedStyle(el).backgroundColor);
  await page.theme.setDarkTheme();
  await expect
    .poll(() => panel.evaluate(el => getComputedStyle(el).backgroundColor))
    .not.toBe(light);
  await panel.screenshot({ path: path.join(SCREENSHOTS, 'sidebar-dark.png') });
  await page.theme.setLightTheme();
});

test('deploy and stop through the dialogs', async ({ page }) => {
  test.setTimeout(240000);
  const panel = await openSidebar(page);
  const section = panel.locator('section[aria-label="Deployments"]');
  // Only where this nbmodel has serving.
  await expect(panel.locator('[data-model="iris"]')).toBeVisible({ timeout: 60000 });
  if ((await section.count()) === 0) {
    test.skip(true, 'nbmodel.serving is not part of this nbmodel');
  }
  const model = panel.locator('[data-model="iris"]');
  await model.locator('.jp-nbmodel-model-head').click();
  const v2 = model.locator('[data-ref="iris/2"]');
  await v2.locator('button', { hasText: 'deploy…' }).click();
  const dialog = page.locator('.jp-Dialog');
  await expect(dialog).toContainText('127.0.0.1');
  await dialog.locator('input[name="alias"]').fill('staging');
  await dialog.locator('.jp-Dialog-button.jp-mod-accept').click();
  await expect(panel.locator('.jp-nbmodel-notice')).toContainText('iris@staging serves iris/2', {
    timeout: 180000
  });
  const row = section.locator('[data-deployment="iris@staging"]');
  await expect(row).toContainText('http://127.0.0.1:');
  await expect(row).toContainText('ok', { timeout: 30000 });
  await expect(v2.locator('.jp-nbmodel-alias')).toContainText(['staging']);

  await row.locator('button', { hasText: 'stop…' }).click();
  await dialog.locator('.jp-Dialog-button.jp-mod-warn').click();
  await expect(panel.locator('.jp-nbmodel-notice')).toContainText('stopped iris@staging', {
    timeout: 60000
  });
  await expect(section.locator('.jp-nbmodel-health.jp-mod-ok')).toHaveCount(0);
});
