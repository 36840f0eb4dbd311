/**
 * The README's quick start: JupyterLab started above example_notebooks/ with no
 * MLFLOW_TRACKING_URI, lesson 1 run in it. Its kernel keeps its models in
 * example_notebooks/mlflow.db, and the sidebar must show that store, not the one of the folder
 * JupyterLab started in.
 */
import { expect, test } from '@jupyterlab/galata';
import * as fs from 'fs';
import * as path from 'path';

// The README shows these two images: each run of this test takes them afresh, into docs/ when
// NBMODEL_README_IMAGES=1 (to refresh the README's), else beside the other test results so a
// test run leaves the working tree as it was.
const DOCS = process.env.NBMODEL_README_IMAGES
  ? path.resolve(__dirname, '..', '..', '..', 'docs')
  : path.resolve(__dirname, '..', 'test-results', 'readme-images');
const LESSON = 'example_notebooks/01_versioning.ipynb';

test('lesson 1 run from the quick start shows its model in the sidebar', async ({ page }) => {
  test.setTimeout(600000);
  await page.notebook.openByPath(LESSON);
  await page.notebook.activate(path.basename(LESSON));
  await page.notebook.run();

  const tab = page.locator('.jp-SideBar.jp-mod-left [data-id="nbmodel-sidebar"]');
  if ((await tab.getAttribute('aria-selected')) !== 'true') {
    await tab.click();
  }
  const panel = page.locator('#nbmodel-sidebar');
  await expect(panel.locator('.jp-nbmodel-store-uri')).toContainText(
    'example_notebooks/mlflow.db',
    { timeout: 60000 }
  );
  const model = panel.locator('[data-model="iris"]');
  await expect(model.locator('.jp-nbmodel-model-head')).toContainText('v3', { timeout: 60000 });
  await expect(model.locator('.jp-nbmodel-model-head')).toContainText('production→2');
  // The README's image: the model opened on its versions, and the store's folder shown as a
  // reader's own would be rather than this run's temporary one.
  await model.locator('.jp-nbmodel-model-head').click();
  await expect(model.locator('.jp-nbmodel-version')).toHaveCount(3);
  // (A stylesheet for the screenshot alone: the sidebar's own DOM is left untouched.)
  fs.mkdirSync(DOCS, { recursive: true });
  await panel.screenshot({
    path: path.join(DOCS, 'sidebar.png'),
    style:
      '#nbmodel-sidebar .jp-nbmodel-store-uri { font-size: 0 !important; }\n' +
      '#nbmodel-sidebar .jp-nbmodel-store-uri::after {' +
      ' content: "~/nbmodel/example_notebooks/mlflow.db"; font-size: var(--jp-code-font-size); }'
  });
  await model.locator('.jp-nbmodel-model-head').click();

  // The same model's panel in a cell of the lesson, as the README shows it, with the room a
  // reader's wide window gives it.
  const viewport = page.viewportSize();
  await page.setViewportSize({ width: 1800, height: 1000 });
  await page.notebook.activate(path.basename(LESSON));
  await page.notebook.addCell('code', '%model_panel iris');
  const last = (await page.notebook.getCellCount()) - 1;
  await page.notebook.runCell(last);
  const cell = await page.notebook.getCellLocator(last);
  const output = cell!.locator('.jp-Cell-outputArea');
  await expect(output.locator('.widget-tab')).toBeVisible({ timeout: 60000 });
  // The History tab's table: the lesson's three versions.
  await expect(output.locator('.nbm-mono').first().locator('option')).toHaveCount(3, {
    timeout: 60000
  });
  await output.scrollIntoViewIfNeeded();
  await output.screenshot({ path: path.join(DOCS, 'panel.png') });
  if (viewport) {
    await page.setViewportSize(viewport);
  }

  // A notebook of another folder open too: the sidebar offers both stores.
  await page.sidebar.openTab('filebrowser');
  // openHomeDirectory does nothing (and says false) before the file browser shows its breadcrumbs.
  await expect(page.locator('.jp-FileBrowser .jp-BreadCrumbs-home')).toBeVisible();
  expect(await page.filebrowser.openHomeDirectory()).toBe(true);
  await page.notebook.createNew('scratch.ipynb');
  await tab.click();
  const folders = panel.locator('.jp-nbmodel-folder-switch select');
  await expect(folders).toBeVisible({ timeout: 30000 });
  await expect(panel.locator('.jp-nbmodel-store-uri')).toHaveText(/\/notebooks\/mlflow\.db$/);
  await folders.selectOption('example_notebooks');
  await expect(panel.locator('.jp-nbmodel-store-uri')).toContainText('example_notebooks/mlflow.db');
  await expect(panel.locator('[data-model="iris"] .jp-nbmodel-model-head')).toContainText('v3');
});
