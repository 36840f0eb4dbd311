import { test } from 'node:test';
import * as assert from 'node:assert/strict';

import {
  IBranch,
  branchLine,
  hasBranches,
  mergeBlocked,
  mergeMagic,
  rolloutView,
  servingRef,
  testBadge
} from '../logic';

test('the test badge counts passes, warns on a failure and says when tests did not run', () => {
  assert.equal(testBadge('iris/4', null), null);
  assert.equal(testBadge('iris/4', undefined), null);
  const ok = testBadge('iris/4', { passed: 7, total: 7, current: true });
  assert.equal(ok?.text, 'tests 7/7');
  assert.equal(ok?.kind, 'ok');
  const failed = testBadge('iris/4', { passed: 5, total: 7, current: true });
  assert.equal(failed?.text, 'tests 5/7');
  assert.equal(failed?.kind, 'failed');
  assert.match(failed?.title ?? '', /2 of 7 test cases failed on iris\/4/);
  // Results of older cases say nothing about the current ones, whatever they counted.
  const stale = testBadge('iris/4', { passed: 7, total: 7, current: false });
  assert.equal(stale?.text, 'tests not run');
  assert.equal(stale?.kind, 'stale');
  assert.match(stale?.title ?? '', /%model_test iris\/4/);
});

const main: IBranch = { name: 'main', head: 3, ahead: 0, moved: null };
const experiment: IBranch = { name: 'experiment', head: 5, ahead: 2, moved: '2026-11-01T00:00:00Z' };

test('branches read as their head and how far ahead of main they are', () => {
  assert.equal(branchLine(main), 'main → v3');
  assert.equal(branchLine(experiment), 'experiment → v5 · 2 ahead');
  assert.equal(branchLine({ name: 'empty', head: null, ahead: 0, moved: null }), 'empty → no head · 0 ahead');
});

test('branches show once a model has one besides main', () => {
  assert.equal(hasBranches(undefined), false);
  assert.equal(hasBranches([]), false);
  assert.equal(hasBranches([main]), false);
  assert.equal(hasBranches([main, experiment]), true);
});

test('the merge insert names the branch, the target and eval variables it explains', () => {
  const lines = mergeMagic('iris', 'experiment').split('\n');
  assert.equal(lines[lines.length - 1], '%model_merge iris experiment --into main --eval X_test y_test');
  assert.ok(lines.slice(0, -1).every(l => l.startsWith('#')));
  assert.match(lines.join(' '), /X_test: .*y_test: /);
  assert.equal(
    mergeMagic('my model', 'try 2', 'dev').split('\n').pop(),
    "%model_merge 'my model' 'try 2' --into dev --eval X_test y_test"
  );
});

test('only a branch with versions main lacks offers a merge into main', () => {
  assert.equal(mergeBlocked(experiment), '');
  assert.match(mergeBlocked(main), /main is the branch merges go into/);
  assert.match(mergeBlocked({ ...experiment, ahead: 0 }), /nothing to merge/);
  assert.match(mergeBlocked({ ...experiment, head: null }), /no head/);
});

const dep = { ref: 'iris@production', name: 'iris', alias: 'production', version: 3 };

test('a running canary shows both versions and their shares', () => {
  assert.equal(servingRef(dep), 'iris/3');
  assert.equal(servingRef({ ref: 'iris@production', name: 'iris' }), 'iris@production');
  const view = rolloutView({
    ...dep,
    rollout: { kind: 'canary', candidate: 'iris/4', share: 25, state: 'running', reason: null }
  });
  assert.deepEqual(view, { text: 'iris/3 75% · iris/4 25% canary', share: 25, kind: 'running' });
  // A share out of range never draws a bar past its ends.
  const odd = rolloutView({ ...dep, rollout: { kind: 'canary', candidate: 'iris/4', share: 140, state: 'running' } });
  assert.equal(odd?.share, 100);
  assert.equal(odd?.text, 'iris/3 0% · iris/4 100% canary');
});

test('a shadow and ended rollouts read as one line', () => {
  assert.equal(rolloutView(dep), null);
  assert.equal(rolloutView({ ...dep, rollout: null }), null);
  assert.deepEqual(
    rolloutView({ ...dep, rollout: { kind: 'shadow', candidate: 'iris/4', share: 0, state: 'running' } }),
    { text: 'iris/3 · iris/4 shadow', share: null, kind: 'running' }
  );
  assert.deepEqual(
    rolloutView({
      ...dep,
      rollout: { kind: 'canary', candidate: 'iris/4', share: 10, state: 'rolled back', reason: 'p99_ms 31 > 20' }
    }),
    { text: 'iris/4 canary rolled back: p99_ms 31 > 20', share: null, kind: 'ended' }
  );
  assert.equal(
    rolloutView({ ...dep, version: 4, rollout: { kind: 'canary', candidate: 'iris/4', share: 100, state: 'promoted' } })
      ?.kind,
    'promoted'
  );
  assert.equal(rolloutView({ ...dep, rollout: { kind: 'blue-green', candidate: 'iris/4', share: 5, state: 'running' } }), null);
});
