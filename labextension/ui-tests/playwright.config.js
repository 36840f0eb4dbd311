/**
 * Galata in headless Debian Chromium: Playwright's own browser download does not work here,
 * so the tests use /usr/bin/chromium (override with CHROMIUM_PATH).
 */
const baseConfig = require('@jupyterlab/galata/lib/playwright-config');

const port = process.env.NBMODEL_UI_PORT || '8899';

module.exports = {
  ...baseConfig,
  reporter: [['list'], ['html', { open: 'never' }]],
  retries: 0,
  workers: 1,
  timeout: 120000,
  use: {
    ...baseConfig.use,
    baseURL: `http://127.0.0.1:${port}`,
    video: 'off',
    trace: 'retain-on-failure',
    launchOptions: {
      executablePath: process.env.CHROMIUM_PATH || '/usr/bin/chromium',
      args: [
        '--no-sandbox',
        '--disable-gpu',
        '--disable-background-networking',
        '--disable-component-update',
        '--no-first-run',
        '--disable-sync',
        '--disable-quic'
      ]
    }
  },
  webServer: {
    // the Python the script checked (PYTHON), so the lab runs the nbmodel it installed
    command: `"${process.env.PYTHON || 'python'}" start_lab.py`,
    url: `http://127.0.0.1:${port}/lab`,
    timeout: 180000,
    reuseExistingServer: false,
    stdout: 'pipe',
    stderr: 'pipe'
  }
};
