/**
 * The README's quick start: JupyterLab started above example_notebooks/ with no
 * MLFLOW_TRACKING_URI, lesson 1 run in it. Its kernel keeps its models in
 * example_notebooks/mlflow.db, and the sidebar must show that store, not the one of the folder
 * JupyterLab started in.
 */
import { expect, test } from '@jupyterlab/galata';
import * as path from 'path';

const SCREENSHOTS = path.resolve(__dirname, '..', 'screenshots');
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
  await panel.screenshot({ path: path.join(SCREENSHOTS, 'quickstart-sidebar.png') });

  // A notebook of another folder open too: the sidebar offers both stores.
  await page.sidebar.openTab('filebrowser');
  await page.filebrowser.openHomeDirectory();
  await page.notebook.createNew('scratch.ipynb');
  await tab.click();
  const folders = panel.locator('.jp-nbmodel-folder-switch select');
  await expect(folders).toBeVisible({ timeout: 30000 });
  await expect(panel.locator('.jp-nbmodel-store-uri')).toHaveText(/\/notebooks\/mlflow\.db$/);
  await folders.selectOption('example_notebooks');
  await expect(panel.locator('.jp-nbmodel-store-uri')).toContainText('example_notebooks/mlflow.db');
  await expect(panel.locator('[data-model="iris"] .jp-nbmodel-model-head')).toContainText('v3');
});
