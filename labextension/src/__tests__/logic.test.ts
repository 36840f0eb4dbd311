import { test } from 'node:test';
import * as assert from 'node:assert/strict';

import {
  IVersion,
  age,
  aliasEntries,
  checkoutMagic,
  compareMagic,
  deployMagic,
  diffBase,
  diffMagic,
  emptyMessage,
  folderLabel,
  folderQuery,
  loadsNbmodel,
  notebookFolder,
  notebookFolders,
  storeLocation,
  withLoadExt,
  errorAdvice,
  firstLine,
  formatNumber,
  hasMore,
  mergePage,
  metricsLine,
  pythonName,
  reloadLimit,
  rollbackMagic,
  shellQuote,
  showMagic,
  aliasMagic,
  alertText,
  deploymentHealth,
  deploymentLabel
} from '../logic';

function v(version: number, extra: Partial<IVersion> = {}): IVersion {
  return {
    name: 'iris',
    version,
    ref: `iris/${version}`,
    message: '',
    aliases: [],
    metrics: {},
    parent: null,
    created: '2026-11-01T00:00:00+00:00',
    user: 'ada',
    retired: false,
    ...extra
  };
}

test('magics match the contract', () => {
  assert.equal(checkoutMagic('iris', 2), '%model_checkout iris/2 --as model');
  assert.equal(checkoutMagic('iris', 2, 'clf'), '%model_checkout iris/2 --as clf');
  assert.equal(showMagic('iris', 3), '%model_show iris/3');
  assert.equal(aliasMagic('iris', 3, 'staging'), '%model_alias iris/3 staging');
  assert.equal(rollbackMagic('iris'), '%model_rollback iris');
  assert.equal(rollbackMagic('iris', 'production', 1), '%model_rollback iris --to 1');
  assert.equal(rollbackMagic('iris', 'staging'), '%model_rollback iris --alias staging');
  assert.equal(deployMagic('iris', 2), '%model_deploy iris/2');
  assert.equal(deployMagic('iris', 2, 'canary'), '%model_deploy iris/2 --alias canary');
  assert.equal(
    compareMagic('iris', [3, 1]).split('\n').pop(),
    '%model_compare iris/1 iris/3 --eval X_test y_test'
  );
});

test('diff puts the older version first', () => {
  assert.equal(diffMagic('iris', 2, 3), '%model_diff iris/2 iris/3');
  assert.equal(diffMagic('iris', 3, 2), '%model_diff iris/2 iris/3');
});

test('diff base is the parent, else the version before', () => {
  const versions = [v(5), v(4), v(2)];
  assert.equal(diffBase(v(5, { parent: 'iris/2' }), versions), 2);
  assert.equal(diffBase(v(5, { parent: 'models:/iris/2' }), versions), 2);
  assert.equal(diffBase(v(5), versions), 4);
  assert.equal(diffBase(v(4, { parent: 'wine/1' }), versions), 2);
  assert.equal(diffBase(v(2), versions), 1);
  assert.equal(diffBase(v(1), versions), null);
});

test('names with spaces are quoted for the magic parser', () => {
  assert.equal(shellQuote('iris'), 'iris');
  assert.equal(shellQuote('my model/2'), "'my model/2'");
  assert.equal(shellQuote("it's"), `'it'"'"'s'`);
  assert.equal(showMagic('my model', 1), "%model_show 'my model/1'");
});

test('python names for --as', () => {
  assert.equal(pythonName('iris'), 'iris');
  assert.equal(pythonName('my-model v2'), 'my_model_v2');
  assert.equal(pythonName('3d'), '_3d');
  assert.equal(pythonName('class'), 'class_');
  assert.equal(pythonName('---'), 'model');
});

test('numbers are short', () => {
  assert.equal(formatNumber(0.95333), '0.953');
  assert.equal(formatNumber(1), '1');
  assert.equal(formatNumber(12345.6), '12346');
  assert.equal(formatNumber(0.00001234), '1.23e-05');
  assert.equal(formatNumber(25000000.5), '2.50e+07');
  assert.equal(formatNumber(NaN), 'NaN');
});

test('metrics line prefers key metrics and stops at three', () => {
  const x = v(1, {
    metrics: { a: 1.5, b: 2, c: 3, d: 4 },
    key_metrics: { accuracy: 0.96, f1_macro: 0.9599 }
  });
  assert.equal(metricsLine(x), 'accuracy 0.96 · f1_macro 0.96');
  assert.equal(metricsLine(v(1, { metrics: { a: 1.5, b: 2, c: 3, d: 4 } })), 'a 1.5 · b 2 · c 3');
  assert.equal(metricsLine(v(1)), '');
});

test('ages', () => {
  const now = new Date('2026-11-10T12:00:00Z');
  assert.equal(age('2026-11-10T11:59:50Z', now), 'just now');
  assert.equal(age('2026-11-10T11:55:00Z', now), '5 min ago');
  assert.equal(age('2026-11-10T09:00:00Z', now), '3 h ago');
  assert.equal(age('2026-11-09T12:00:00Z', now), '1 day ago');
  assert.equal(age('2026-09-01T12:00:00Z', now), '2026-09-01');
  assert.equal(age(null, now), '');
  assert.equal(age('garbage', now), '');
});

test('first line of a message', () => {
  assert.equal(firstLine('short\nmore'), 'short');
  assert.equal(firstLine('x'.repeat(100), 10), 'x'.repeat(9) + '…');
  assert.equal(firstLine(''), '');
});

test('production alias comes first', () => {
  assert.deepEqual(aliasEntries({ staging: 3, canary: 4, production: 2 }), [
    ['production', 2],
    ['canary', 4],
    ['staging', 3]
  ]);
});

test('pages merge without repeats', () => {
  const first = [v(120), v(119)];
  const merged = mergePage(first, [v(119), v(118)]);
  assert.deepEqual(
    merged.map(x => x.version),
    [120, 119, 118]
  );
  assert.equal(hasMore(50, 120), true);
  assert.equal(hasMore(120, 120), false);
  assert.equal(reloadLimit(0), 50);
  assert.equal(reloadLimit(100), 100);
  assert.equal(reloadLimit(5000), 500);
});

test('empty and error states say what to do', () => {
  assert.match(
    emptyMessage({ uri: 'sqlite:///x.db', origin: 'default', exists: false }),
    /%model_commit/
  );
  assert.match(emptyMessage({ uri: 'u', origin: 'default', exists: true }), /%model_commit/);
  assert.match(
    errorAdvice({ status: 404, kind: 'no-extension', message: '' }),
    /server extension enable/
  );
  assert.match(errorAdvice({ status: 503, kind: 'store', message: '' }), /store URI/);
  assert.equal(errorAdvice({ status: 400, kind: 'other', message: '' }), '');
});

test('deployments and alerts read as one line', () => {
  assert.equal(deploymentLabel({ ref: 'iris@production', name: 'iris' }), 'iris@production');
  assert.equal(deploymentLabel({ name: 'iris', alias: 'staging' }), 'iris@staging');
  assert.equal(deploymentLabel({}), 'deployment');
  assert.equal(deploymentHealth({ health: 'ok' }), 'ok');
  assert.equal(deploymentHealth({}), 'unknown');
  assert.equal(
    alertText({ model: 'iris', version: 3, rule: 'psi>0.2', value: 0.4123, feature: 'petal', since: '2026-11-01' }),
    'iris/3: psi>0.2 at 0.412 (petal) since 2026-11-01'
  );
  assert.equal(alertText({ model: 'iris', version: 3, rule: 'psi[petal]>0.2', value: 1, feature: 'petal' }),
    'iris/3: psi[petal]>0.2 at 1');
});

test('an inserted compare says what its eval variables must hold', () => {
  const lines = compareMagic('iris', [1, 2]).split('\n');
  assert.ok(lines.slice(0, -1).every(l => l.startsWith('#')));
  assert.match(lines.join(' '), /X_test: .*features/);
  assert.match(lines.join(' '), /y_test: .*true labels/);
});

test('an insert loads nbmodel first where the notebook has not', () => {
  assert.equal(withLoadExt('%model_log iris', ['import pandas']), '%load_ext nbmodel\n%model_log iris');
  assert.equal(withLoadExt('%model_log iris', []), '%load_ext nbmodel\n%model_log iris');
  assert.equal(withLoadExt('%model_log iris', ['x = 1\n%load_ext nbmodel']), '%model_log iris');
  assert.ok(loadsNbmodel(['%reload_ext nbmodel']));
  assert.ok(loadsNbmodel(['get_ipython().run_line_magic("load_ext", "nbmodel")']));
  assert.ok(!loadsNbmodel(['%load_ext autoreload']));
  assert.ok(!loadsNbmodel(['# %load_ext nbmodel is needed']));
  assert.ok(!loadsNbmodel(['%load_ext nbmodel_extra']));
});

test('the store follows the notebook folder', () => {
  assert.equal(notebookFolder('example_notebooks/01_versioning.ipynb'), 'example_notebooks');
  assert.equal(notebookFolder('Untitled.ipynb'), '');
  assert.equal(notebookFolder('/a/b/c.ipynb'), 'a/b');
  assert.deepEqual(notebookFolders(['a/1.ipynb', 'b/2.ipynb', 'a/3.ipynb', 'x.ipynb']), ['a', 'b', '']);
  assert.equal(folderQuery('models', 'a b'), 'models?dir=a%20b');
  assert.equal(folderQuery('models/iris?limit=5', ''), 'models/iris?limit=5&dir=');
  assert.equal(folderQuery('store?dir=x', 'y'), 'store?dir=x');
  assert.equal(folderQuery('models', null), 'models');
  assert.equal(folderLabel(''), 'the folder JupyterLab started in');
  assert.equal(folderLabel('course'), 'course/');
  assert.equal(
    storeLocation({ uri: 'sqlite:////repo/example_notebooks/mlflow.db', origin: 'default', exists: true }),
    '/repo/example_notebooks/mlflow.db'
  );
  assert.equal(storeLocation({ uri: 'http://team:5000', origin: 'x', exists: true }), 'http://team:5000');
  const missing = { uri: 'sqlite:////r/nb/mlflow.db', origin: 'default', exists: false, folder: '/r/nb' };
  assert.match(emptyMessage(missing), /No store yet at \/r\/nb\/mlflow\.db, where notebooks of this folder/);
});
