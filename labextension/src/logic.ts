/**
 * The sidebar's pure logic: the magics it inserts, how it shows metrics and ages, how pages of
 * versions merge, and what its empty and error states say. No JupyterLab imports here, so the
 * unit tests run under plain node.
 */

/** One version as `GET /nbmodel/api/models/{name}` returns it (Version.to_dict()). */
export interface IVersion {
  name: string;
  version: number;
  ref: string;
  message: string;
  aliases: string[];
  metrics: Record<string, number>;
  key_metrics?: Record<string, number>;
  parent: string | null;
  created: string;
  user: string | null;
  retired: boolean;
  tags?: Record<string, string>;
  /** The model tests' results (null or absent: the version has no test cases). */
  tests?: ITestResults | null;
  /** The branches whose head this version is. */
  branches?: string[];
  /** A merge version's second parent. */
  merge_parent?: string | null;
}

/** A version's test results: `current` is false when they were not run on its current cases. */
export interface ITestResults {
  passed: number;
  total: number;
  current: boolean;
}

/** A branch of a model as `GET /nbmodel/api/models/{name}` lists it (main first). */
export interface IBranch {
  name: string;
  head: number | null;
  /** How many versions it has that main lacks. */
  ahead: number;
  moved: string | null;
}

/** A model as `GET /nbmodel/api/models` lists it (ModelSummary.to_dict()). */
export interface IModelSummary {
  name: string;
  latest: number | null;
  aliases: Record<string, number>;
  updated: string | null;
}

export interface IStoreInfo {
  uri: string;
  origin: string;
  exists: boolean;
  /** The notebook folder the store was resolved for (absent: the Jupyter server's own). */
  folder?: string;
}

export interface IFeatures {
  deployments: boolean;
  alerts: boolean;
}

export interface IModelPage {
  name: string;
  versions: IVersion[];
  total: number;
  offset: number;
  limit: number;
  aliases: Record<string, number>;
  /** Absent from servers without branches. */
  branches?: IBranch[];
}

/** Versions per page, as the server's default. */
export const PAGE = 50;

/** The most versions one refresh reloads (the server's cap on `limit`). */
export const MAX_RELOAD = 500;

// -- magics -------------------------------------------------------------------------------------

/**
 * Quote an argument for an IPython line magic only when it needs it: model names may hold
 * spaces or shell-special characters, which magic_arguments splits like a shell.
 */
export function shellQuote(arg: string): string {
  if (/^[A-Za-z0-9_@%+=:,./-]+$/.test(arg)) {
    return arg;
  }
  return "'" + arg.replace(/'/g, "'\"'\"'") + "'";
}

/** A name usable as a Python variable for `--as` (`my-model v2` becomes `my_model_v2`). */
export function pythonName(text: string, fallback = 'model'): string {
  let name = text.replace(/[^A-Za-z0-9_]+/g, '_').replace(/^_+|_+$/g, '');
  if (!name) {
    return fallback;
  }
  if (/^[0-9]/.test(name)) {
    name = '_' + name;
  }
  return PYTHON_KEYWORDS.has(name) ? name + '_' : name;
}

const PYTHON_KEYWORDS = new Set(
  (
    'False None True and as assert async await break class continue def del elif else except ' +
    'finally for from global if import in is lambda nonlocal not or pass raise return try ' +
    'while with yield'
  ).split(' ')
);

export function versionRef(name: string, version: number): string {
  return `${name}/${version}`;
}

export function checkoutMagic(name: string, version: number, asVar = 'model'): string {
  return `%model_checkout ${shellQuote(versionRef(name, version))} --as ${pythonName(asVar)}`;
}

export function showMagic(name: string, version: number): string {
  return `%model_show ${shellQuote(versionRef(name, version))}`;
}

/** `%model_diff OLD NEW`, the older version first whatever order they were picked in. */
export function diffMagic(name: string, a: number, b: number): string {
  const [older, newer] = a <= b ? [a, b] : [b, a];
  return `%model_diff ${shellQuote(versionRef(name, older))} ${shellQuote(
    versionRef(name, newer)
  )}`;
}

/** The version a diff of `v` compares against: its parent in the same model, else the one before. */
export function diffBase(v: IVersion, versions: IVersion[]): number | null {
  const parent = parentVersion(v);
  if (parent !== null && parent !== v.version) {
    return parent;
  }
  const older = versions
    .map(x => x.version)
    .filter(n => n < v.version)
    .sort((x, y) => y - x);
  return older.length ? older[0] : v.version > 1 ? v.version - 1 : null;
}

/** The parent's version number when the parent is a version of the same model. */
export function parentVersion(v: IVersion): number | null {
  if (!v.parent) {
    return null;
  }
  const m = /^(?:models:\/)?(.+)\/(\d+)$/.exec(v.parent);
  if (!m || m[1] !== v.name) {
    return null;
  }
  return Number(m[2]);
}

export function logMagic(name: string): string {
  return `%model_log ${shellQuote(name)}`;
}

export function aliasMagic(name: string, version: number, alias: string): string {
  return `%model_alias ${shellQuote(versionRef(name, version))} ${shellQuote(alias)}`;
}

export function rollbackMagic(name: string, alias = 'production', to?: number | null): string {
  let text = `%model_rollback ${shellQuote(name)}`;
  if (to !== undefined && to !== null) {
    text += ` --to ${to}`;
  }
  if (alias !== 'production') {
    text += ` --alias ${shellQuote(alias)}`;
  }
  return text;
}

export function deployMagic(name: string, version: number, alias = 'production'): string {
  let text = `%model_deploy ${shellQuote(versionRef(name, version))}`;
  if (alias !== 'production') {
    text += ` --alias ${shellQuote(alias)}`;
  }
  return text;
}

/** The eval variables an inserted compare names; the cell says what they must hold. */
export const COMPARE_EXPECTS =
  '# X_test: a table of the features the models were trained on; y_test: its true labels.\n' +
  '# Rename them to your own eval variables before running.';

export function compareMagic(name: string, versions: number[]): string {
  const refs = [...versions]
    .sort((a, b) => a - b)
    .map(v => shellQuote(versionRef(name, v)));
  return `${COMPARE_EXPECTS}\n%model_compare ${refs.join(' ')} --eval X_test y_test`;
}

/** The line that brings a branch back: `%model_merge iris experiment --into main --eval ...`. */
export function mergeMagic(name: string, branch: string, into = 'main'): string {
  return (
    `${COMPARE_EXPECTS}\n%model_merge ${shellQuote(name)} ${shellQuote(branch)} ` +
    `--into ${shellQuote(into)} --eval X_test y_test`
  );
}

/** The line that makes the magics exist in a kernel. */
export const LOAD_EXT = '%load_ext nbmodel';

/**
 * Whether a notebook's cells load nbmodel's magics (`%load_ext nbmodel`, `%reload_ext nbmodel`,
 * or `get_ipython().run_line_magic("load_ext", "nbmodel")`).
 */
export function loadsNbmodel(sources: string[]): boolean {
  const line = /^\s*%(re)?load_ext\s+(\S+\s+)*nbmodel\s*$/m;
  const call = /run_line_magic\(\s*["'](re)?load_ext["']\s*,\s*["']nbmodel["']/;
  return sources.some(src => line.test(src) || call.test(src));
}

/** The text to insert: the magic, after `%load_ext nbmodel` when the notebook lacks it. */
export function withLoadExt(text: string, sources: string[]): string {
  return loadsNbmodel(sources) ? text : `${LOAD_EXT}\n${text}`;
}

// -- which store ----------------------------------------------------------------------------------

/** The folder of a notebook path as JupyterLab names it ("course/01.ipynb" -> "course"). */
export function notebookFolder(path: string): string {
  const clean = path.replace(/^\/+/, '');
  const cut = clean.lastIndexOf('/');
  return cut < 0 ? '' : clean.slice(0, cut);
}

/** The distinct folders of the open notebooks, in the order they were opened. */
export function notebookFolders(paths: string[]): string[] {
  const seen: string[] = [];
  for (const p of paths) {
    const f = notebookFolder(p);
    if (!seen.includes(f)) {
      seen.push(f);
    }
  }
  return seen;
}

/**
 * A route's path asking about the store of the notebooks in `dir` (null: the server's own).
 * A path that names its folder already keeps it.
 */
export function folderQuery(path: string, dir: string | null): string {
  if (dir === null || /[?&]dir=/.test(path)) {
    return path;
  }
  return path + (path.includes('?') ? '&' : '?') + `dir=${encodeURIComponent(dir)}`;
}

/** How the sidebar names a folder in its store switch ("" is the root the server started in). */
export function folderLabel(folder: string): string {
  return folder === '' ? 'the folder JupyterLab started in' : `${folder}/`;
}

/** The store as a path a user can compare with their kernel's (`%model_status`). */
export function storeLocation(store: IStoreInfo): string {
  return store.uri.startsWith('sqlite:///') ? store.uri.slice('sqlite:///'.length) : store.uri;
}

// -- display ------------------------------------------------------------------------------------

/** Short numbers for a narrow sidebar: 0.9533 -> "0.953", 12345.6 -> "12346", 1e-5 -> "1e-05". */
export function formatNumber(value: number): string {
  if (!Number.isFinite(value)) {
    return String(value);
  }
  if (Number.isInteger(value)) {
    return String(value);
  }
  const abs = Math.abs(value);
  if (abs !== 0 && (abs < 1e-3 || abs >= 1e6)) {
    return value.toExponential(2).replace(/e([+-])(\d)$/, 'e$10$2');
  }
  if (abs >= 1000) {
    return value.toFixed(0);
  }
  return String(Number(value.toPrecision(3)));
}

/** The key metrics of a version as `accuracy 0.96 · f1_macro 0.96`, at most `max` of them. */
export function metricsLine(v: IVersion, max = 3): string {
  const metrics =
    v.key_metrics && Object.keys(v.key_metrics).length ? v.key_metrics : v.metrics || {};
  return Object.entries(metrics)
    .slice(0, max)
    .map(([k, val]) => `${k} ${formatNumber(val)}`)
    .join(' · ');
}

/** "just now", "5 min ago", "3 h ago", "2 days ago", or the date past a month. */
export function age(iso: string | null, now: Date = new Date()): string {
  if (!iso) {
    return '';
  }
  const then = new Date(iso);
  if (isNaN(then.getTime())) {
    return '';
  }
  const s = Math.max(0, Math.round((now.getTime() - then.getTime()) / 1000));
  if (s < 45) {
    return 'just now';
  }
  const m = Math.round(s / 60);
  if (m < 60) {
    return `${m} min ago`;
  }
  const h = Math.round(m / 60);
  if (h < 24) {
    return `${h} h ago`;
  }
  const d = Math.round(h / 24);
  if (d < 31) {
    return d === 1 ? '1 day ago' : `${d} days ago`;
  }
  return then.toISOString().slice(0, 10);
}

/** The first line of a commit message, cut to fit. */
export function firstLine(text: string, width = 80): string {
  const line = (text || '').split('\n')[0].trim();
  return line.length > width ? line.slice(0, width - 1) + '…' : line;
}

/** Aliases of a model as `production → 2`, sorted with production first. */
export function aliasEntries(aliases: Record<string, number>): [string, number][] {
  return Object.entries(aliases).sort(([a], [b]) =>
    a === 'production' ? -1 : b === 'production' ? 1 : a.localeCompare(b)
  );
}

// -- tests and branches --------------------------------------------------------------------------

export interface IBadge {
  text: string;
  /** `ok`, `failed` (some case fails) or `stale` (not run on the version's current cases). */
  kind: 'ok' | 'failed' | 'stale';
  title: string;
}

/** A version's test badge: "tests 7/7", "tests 5/7" (failed), "tests not run"; null: no cases. */
export function testBadge(ref: string, t: ITestResults | null | undefined): IBadge | null {
  if (!t) {
    return null;
  }
  if (!t.current) {
    return {
      text: 'tests not run',
      kind: 'stale',
      title: `${ref}'s tests were not run on its current cases: run %model_test ${ref}`
    };
  }
  const failed = t.total - t.passed;
  if (failed > 0) {
    return {
      text: `tests ${t.passed}/${t.total}`,
      kind: 'failed',
      title: `${failed} of ${t.total} test case${t.total === 1 ? '' : 's'} failed on ${ref}: ` +
        'the alias, rollback and deploy gates refuse it'
    };
  }
  return {
    text: `tests ${t.passed}/${t.total}`,
    kind: 'ok',
    title: `all ${t.total} test case${t.total === 1 ? '' : 's'} passed on ${ref}`
  };
}

/** Whether a model's branches are worth showing: only once it has one besides main. */
export function hasBranches(branches: IBranch[] | undefined): boolean {
  return (branches ?? []).some(b => b.name !== 'main');
}

/** A branch as one line: `experiment → v5 · 2 ahead`. */
export function branchLine(b: IBranch): string {
  const head = b.head === null ? 'no head' : `v${b.head}`;
  if (b.name === 'main') {
    return `${b.name} → ${head}`;
  }
  return `${b.name} → ${head} · ${b.ahead} ahead`;
}

/** Why a branch has no merge button enabled ('' when it can be merged into `into`). */
export function mergeBlocked(b: IBranch, into = 'main'): string {
  if (b.name === into) {
    return `${into} is the branch merges go into`;
  }
  if (b.head === null) {
    return `${b.name} has no head to merge`;
  }
  if (b.ahead <= 0) {
    return `nothing to merge: ${b.name} has no versions that ${into} lacks`;
  }
  return '';
}

// -- deployments and alerts ---------------------------------------------------------------------

/** A deployment as nbmodel.serving describes it (Deployment.to_dict()). */
export interface IDeploymentLike {
  ref?: string;
  name?: string;
  alias?: string | null;
  version?: number | null;
  url?: string;
  health?: string;
  error?: string | null;
  rollout?: IRollout | null;
}

/** A canary or shadow on a deployment, running or ended. */
export interface IRollout {
  kind: 'canary' | 'shadow' | string;
  /** `iris/4` */
  candidate: string;
  /** Percent of requests sent to the candidate. */
  share: number;
  state: string;
  reason?: string | null;
}

/** The version a deployment serves: `iris/3` (its label when the version is unknown). */
export function servingRef(d: IDeploymentLike): string {
  if (d.name && d.version !== undefined && d.version !== null) {
    return `${d.name}/${d.version}`;
  }
  return deploymentLabel(d);
}

export interface IRolloutView {
  /** `iris/3 75% · iris/4 25% canary`, `iris/3 · iris/4 shadow`, `iris/4 canary rolled back: ...` */
  text: string;
  /** The candidate's share while a canary runs (drawn as a bar), else null. */
  share: number | null;
  /** `running`, `promoted` or `ended` (rolled back or stopped). */
  kind: 'running' | 'promoted' | 'ended';
}

/** How the sidebar shows a deployment's rollout; null when it has none. */
export function rolloutView(d: IDeploymentLike): IRolloutView | null {
  const ro = d.rollout;
  if (!ro || (ro.kind !== 'canary' && ro.kind !== 'shadow')) {
    return null;
  }
  const serving = servingRef(d);
  if (ro.state === 'running') {
    if (ro.kind === 'shadow') {
      return { text: `${serving} · ${ro.candidate} shadow`, share: null, kind: 'running' };
    }
    const share = Math.max(0, Math.min(100, Math.round(Number(ro.share) || 0)));
    return {
      text: `${serving} ${100 - share}% · ${ro.candidate} ${share}% canary`,
      share,
      kind: 'running'
    };
  }
  const reason = ro.reason ? `: ${ro.reason}` : '';
  return {
    text: `${ro.candidate} ${ro.kind} ${ro.state}${reason}`,
    share: null,
    kind: ro.state === 'promoted' ? 'promoted' : 'ended'
  };
}

/** What to call a deployment, and what `stop` takes: `iris@production`. */
export function deploymentLabel(d: IDeploymentLike): string {
  if (d.ref) {
    return d.ref;
  }
  if (d.name) {
    return d.alias ? `${d.name}@${d.alias}` : d.name;
  }
  return 'deployment';
}

export function deploymentHealth(d: IDeploymentLike): string {
  return d.health ? String(d.health) : 'unknown';
}

/** An open alert as nbmodel.monitoring describes it (Alert.to_dict()). */
export interface IAlertLike {
  model?: string;
  version?: number;
  rule?: string;
  value?: number;
  feature?: string | null;
  window?: string;
  since?: string;
}

/** `iris/3: accuracy<0.9 at 0.82 (petal_width) since 2026-11-01`. */
export function alertText(a: IAlertLike): string {
  const ref = a.model ? (a.version !== undefined ? `${a.model}/${a.version}` : a.model) : '';
  let text = `${ref}${ref ? ': ' : ''}${a.rule ?? 'alert'}`;
  if (typeof a.value === 'number') {
    text += ` at ${formatNumber(a.value)}`;
  }
  if (a.feature && !(a.rule ?? '').includes('[')) {
    text += ` (${a.feature})`;
  }
  if (a.since) {
    text += ` since ${a.since}`;
  }
  return text;
}

// -- paging -------------------------------------------------------------------------------------

/** Append a later page to the versions already shown, dropping any repeated version. */
export function mergePage(shown: IVersion[], page: IVersion[]): IVersion[] {
  const seen = new Set(shown.map(v => v.version));
  return shown.concat(page.filter(v => !seen.has(v.version)));
}

/** Whether a "show more" button is needed under the versions shown. */
export function hasMore(shown: number, total: number): boolean {
  return shown < total;
}

/** How many versions a refresh reloads: as many as are shown, at least a page. */
export function reloadLimit(shown: number): number {
  return Math.min(MAX_RELOAD, Math.max(PAGE, shown));
}

// -- states -------------------------------------------------------------------------------------

export interface IApiErrorLike {
  status: number;
  kind: string;
  message: string;
}

/** What the sidebar says when there is nothing to list. */
export function emptyMessage(store: IStoreInfo | null): string {
  if (store && !store.exists) {
    const where = store.folder !== undefined ? ', where notebooks of this folder keep their models' : '';
    return (
      `No store yet at ${storeLocation(store)}${where}. Commit a model from a notebook with ` +
      '%model_commit VAR (after %load_ext nbmodel) and it will show here.'
    );
  }
  return 'No models in this store yet. Commit one from a notebook with %model_commit VAR.';
}

/** What the sidebar says, and what to do, when a call fails. */
export function errorAdvice(err: IApiErrorLike): string {
  switch (err.kind) {
    case 'no-extension':
      return (
        'The nbmodel server extension is not enabled. Run ' +
        '`jupyter server extension enable nbmodel.handlers` and restart JupyterLab.'
      );
    case 'network':
      return 'The Jupyter server does not answer. Check that it is still running, then refresh.';
    case 'forbidden':
      return 'The Jupyter server refused the request. Reload the page to log in again.';
    case 'store':
      return 'Check the store URI below, start the MLflow server it names, or choose another store.';
    case 'no-store':
      return 'Commit a model from a notebook in that folder first, or pick another folder above.';
    case 'model-not-found':
      return 'The model may have been deleted. Refresh the list.';
    case 'retired':
      return 'Choose a version that is not retired, or move the alias first.';
    case 'internal':
      return 'This looks like a bug in nbmodel; the Jupyter server log has the details.';
    default:
      return '';
  }
}
