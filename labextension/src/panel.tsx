/**
 * The "Models" sidebar: registered models, their versions and aliases, deployments and alerts
 * where those features exist, and actions behind confirmation dialogs. It refreshes every few
 * seconds while it is visible, and on demand.
 */
import { showErrorMessage } from '@jupyterlab/apputils';
import {
  ReactWidget,
  UseSignal,
  caretDownIcon,
  caretRightIcon,
  refreshIcon
} from '@jupyterlab/ui-components';
import { Message } from '@lumino/messaging';
import * as React from 'react';

import { ApiError, api } from './api';
import {
  askDeploy,
  askRetire,
  askRollback,
  askSetAlias,
  askStop
} from './dialogs';
import {
  IDeploymentLike,
  IModelSummary,
  IStoreInfo,
  IVersion,
  age,
  aliasEntries,
  checkoutMagic,
  compareMagic,
  diffBase,
  diffMagic,
  emptyMessage,
  errorAdvice,
  firstLine,
  folderLabel,
  alertText,
  branchLine,
  deploymentHealth,
  deploymentLabel,
  hasBranches,
  hasMore,
  logMagic,
  mergeBlocked,
  mergeMagic,
  metricsLine,
  pythonName,
  rollbackMagic,
  rolloutView,
  showMagic,
  storeLocation,
  testBadge
} from './logic';
import { IOpenModel, SidebarModel } from './model';

/** How often the panel refreshes while visible. */
export const REFRESH_MS = 5000;

export interface IActions {
  /** Put `text` into a new cell of the active notebook. */
  insert(text: string): void;
}

function ErrorBox(props: { error: ApiError; what?: string }): JSX.Element {
  const advice = errorAdvice(props.error);
  return (
    <div className="jp-nbmodel-error" role="alert">
      <div>
        {props.what ? `${props.what}: ` : ''}
        {props.error.message}
      </div>
      {advice && <div className="jp-nbmodel-advice">{advice}</div>}
    </div>
  );
}

/** Run an action; a refused one shows the server's message and what to do. */
async function act(
  model: SidebarModel,
  title: string,
  fn: () => Promise<string>
): Promise<void> {
  try {
    const done = await fn();
    if (done) {
      model.say(done);
    }
  } catch (err) {
    const e = err as ApiError;
    const advice = e.kind ? errorAdvice(e) : '';
    await showErrorMessage(title, (e.message || String(err)) + (advice ? `\n\n${advice}` : ''));
  } finally {
    await model.refresh();
  }
}

function moveText(m: { name: string; alias: string; from: number | null; to: number | null; changed: boolean; kind: string }): string {
  const ref = `${m.name}@${m.alias}`;
  const to = m.to ? `${m.name}/${m.to}` : '(unset)';
  if (!m.changed) {
    return `${ref} already points to ${to}`;
  }
  const from = m.from ? `${m.name}/${m.from}` : '(unset)';
  const verb = m.kind === 'rollback' ? 'rolled back' : 'moved';
  return `${ref} ${verb} from ${from} to ${to}`;
}

function LinkButton(props: {
  label: string;
  title: string;
  onClick: () => void;
  warn?: boolean;
  disabled?: boolean;
}): JSX.Element {
  return (
    <button
      type="button"
      className={'jp-nbmodel-link' + (props.warn ? ' jp-mod-warn' : '')}
      title={props.title}
      aria-label={props.title}
      disabled={props.disabled}
      onClick={ev => {
        ev.stopPropagation();
        props.onClick();
      }}
    >
      {props.label}
    </button>
  );
}

function TestBadge(props: { v: IVersion }): JSX.Element | null {
  const badge = testBadge(props.v.ref, props.v.tests);
  if (!badge) {
    return null;
  }
  return (
    <span
      className={`jp-nbmodel-tests jp-mod-${badge.kind}`}
      title={badge.title}
      data-tests={badge.kind}
    >
      {badge.text}
    </span>
  );
}

function VersionRow(props: {
  model: SidebarModel;
  actions: IActions;
  v: IVersion;
  state: IOpenModel;
  canDeploy: boolean;
}): JSX.Element {
  const { model, actions, v, state, canDeploy } = props;
  const ticked = (model.selected.get(v.name) ?? []).includes(v.version);
  const base = diffBase(v, state.versions);
  const metrics = metricsLine(v);
  return (
    <li
      className={'jp-nbmodel-version' + (v.retired ? ' jp-mod-retired' : '')}
      data-ref={v.ref}
    >
      <div className="jp-nbmodel-version-head">
        <input
          type="checkbox"
          checked={ticked}
          title={`select ${v.ref} for a diff or comparison`}
          aria-label={`select ${v.ref}`}
          onChange={ev => model.tick(v.name, v.version, ev.target.checked)}
        />
        <span className="jp-nbmodel-vnum">v{v.version}</span>
        {v.aliases.map(a => (
          <span key={a} className="jp-nbmodel-alias" title={`${v.name}@${a}`}>
            {a}
          </span>
        ))}
        {(hasBranches(state.branches) ? v.branches ?? [] : []).map(b => (
          <span key={b} className="jp-nbmodel-branch" title={`head of the branch ${b}`}>
            ⎇ {b}
          </span>
        ))}
        <TestBadge v={v} />
        {v.retired && (
          <span className="jp-nbmodel-retired" title="retired: deploy and alias refuse it">
            retired
          </span>
        )}
        <span className="jp-nbmodel-age" title={v.created}>
          {age(v.created)}
          {v.user ? ` · ${v.user}` : ''}
        </span>
      </div>
      {v.message && (
        <div className="jp-nbmodel-message" title={v.message}>
          {firstLine(v.message)}
        </div>
      )}
      {metrics && <div className="jp-nbmodel-metrics">{metrics}</div>}
      <div className="jp-nbmodel-actions">
        <LinkButton
          label="checkout"
          title={`insert %model_checkout ${v.ref} into the notebook`}
          onClick={() => actions.insert(checkoutMagic(v.name, v.version, pythonName(v.name)))}
        />
        <LinkButton
          label="show"
          title={`insert %model_show ${v.ref} into the notebook`}
          onClick={() => actions.insert(showMagic(v.name, v.version))}
        />
        {base !== null && (
          <LinkButton
            label={`diff v${base}`}
            title={`insert %model_diff ${v.name}/${base} ${v.ref} into the notebook`}
            onClick={() => actions.insert(diffMagic(v.name, base, v.version))}
          />
        )}
        <LinkButton
          label="alias…"
          title={`set an alias on ${v.ref}`}
          onClick={async () => {
            const choice = await askSetAlias(v, state.aliases);
            if (choice) {
              await act(model, 'Could not set the alias', async () =>
                moveText(
                  await api.setAlias(v.name, v.version, choice.alias, choice.message, choice.force)
                )
              );
            }
          }}
        />
        {canDeploy && (
          <LinkButton
            label="deploy…"
            title={`deploy ${v.ref}`}
            disabled={v.retired}
            onClick={async () => {
              const choice = await askDeploy(v);
              if (choice) {
                await act(model, 'Could not deploy', async () => {
                  const reply = await api.deploy(v.ref, choice.alias, choice.port);
                  const url = reply.deployment?.url;
                  return `${v.name}@${choice.alias} serves ${v.ref}` + (url ? ` at ${url}` : '');
                });
              }
            }}
          />
        )}
        {!v.retired && (
          <LinkButton
            label="retire…"
            warn
            title={`retire ${v.ref}`}
            onClick={async () => {
              const choice = await askRetire(v);
              if (choice) {
                await act(model, 'Could not retire', async () => {
                  await api.retire(v.name, v.version, choice.message, choice.force);
                  return `${v.ref} retired`;
                });
              }
            }}
          />
        )}
      </div>
    </li>
  );
}

function Aliases(props: {
  model: SidebarModel;
  actions: IActions;
  name: string;
  state: IOpenModel;
}): JSX.Element | null {
  const { model, actions, name, state } = props;
  const entries = aliasEntries(state.aliases);
  if (!entries.length) {
    return (
      <div className="jp-nbmodel-hint">
        No aliases yet: use “alias…” on a version to point production at it.
      </div>
    );
  }
  return (
    <ul className="jp-nbmodel-aliases">
      {entries.map(([alias, version]) => (
        <li key={alias} data-alias={alias}>
          <span className="jp-nbmodel-alias">{alias}</span>
          <span className="jp-nbmodel-arrow">→</span>
          <span className="jp-nbmodel-target">
            {name}/{version}
          </span>
          <LinkButton
            label="roll back…"
            warn
            title={`roll back ${name}@${alias}`}
            onClick={async () => {
              const choice = await askRollback(name, alias, version, state.versions);
              if (choice) {
                await act(model, `Could not roll back ${name}@${alias}`, async () =>
                  moveText(await api.rollback(name, alias, choice.to, choice.message))
                );
              }
            }}
          />
          <LinkButton
            label="insert"
            title={`insert %model_rollback for ${name}@${alias} into the notebook`}
            onClick={() => actions.insert(rollbackMagic(name, alias))}
          />
        </li>
      ))}
    </ul>
  );
}

/** A model's branches with their heads, and the merge each one would insert. */
function Branches(props: { actions: IActions; name: string; state: IOpenModel }): JSX.Element | null {
  const { actions, name, state } = props;
  if (!hasBranches(state.branches)) {
    return null; // main alone says nothing the versions do not
  }
  return (
    <ul className="jp-nbmodel-branches" aria-label={`branches of ${name}`}>
      {state.branches.map(b => {
        const blocked = mergeBlocked(b);
        return (
          <li key={b.name} data-branch={b.name}>
            <span className="jp-nbmodel-branch-line">⎇ {branchLine(b)}</span>
            {b.moved && (
              <span className="jp-nbmodel-age" title={b.moved}>
                {age(b.moved)}
              </span>
            )}
            {b.name !== 'main' && (
              <LinkButton
                label="merge"
                title={
                  blocked ||
                  `insert %model_merge ${name} ${b.name} --into main into the notebook`
                }
                disabled={!!blocked}
                onClick={() => actions.insert(mergeMagic(name, b.name))}
              />
            )}
          </li>
        );
      })}
    </ul>
  );
}

function ModelItem(props: {
  model: SidebarModel;
  actions: IActions;
  summary: IModelSummary;
}): JSX.Element {
  const { model, actions, summary } = props;
  const state = model.open.get(summary.name);
  const Caret = state ? caretDownIcon : caretRightIcon;
  const ticked = [...(model.selected.get(summary.name) ?? [])].sort((a, b) => a - b);
  return (
    <li className="jp-nbmodel-model" data-model={summary.name}>
      <div
        className="jp-nbmodel-model-head"
        role="button"
        tabIndex={0}
        aria-expanded={!!state}
        onClick={() => void model.toggle(summary.name)}
        onKeyDown={ev => {
          if (ev.key === 'Enter' || ev.key === ' ') {
            ev.preventDefault();
            void model.toggle(summary.name);
          }
        }}
      >
        <Caret.react tag="span" className="jp-nbmodel-caret" />
        <span className="jp-nbmodel-name">{summary.name}</span>
        <span className="jp-nbmodel-count">
          {summary.latest !== null ? `v${summary.latest}` : 'no versions'}
        </span>
        {aliasEntries(summary.aliases).map(([a, n]) => (
          <span key={a} className="jp-nbmodel-alias" title={`${summary.name}@${a} → ${n}`}>
            {a}→{n}
          </span>
        ))}
      </div>
      {state && (
        <div className="jp-nbmodel-model-body">
          {state.error && <ErrorBox error={state.error} />}
          <Aliases model={model} actions={actions} name={summary.name} state={state} />
          <Branches actions={actions} name={summary.name} state={state} />
          <div className="jp-nbmodel-selection">
            <LinkButton
              label="log"
              title={`insert %model_log ${summary.name} into the notebook`}
              onClick={() => actions.insert(logMagic(summary.name))}
            />
            <LinkButton
              label={ticked.length === 2 ? `diff v${ticked[0]} v${ticked[1]}` : 'diff'}
              title={
                ticked.length === 2
                  ? `insert %model_diff ${summary.name}/${ticked[0]} ${summary.name}/${ticked[1]}`
                  : 'tick two versions to diff them'
              }
              disabled={ticked.length !== 2}
              onClick={() => actions.insert(diffMagic(summary.name, ticked[0], ticked[1]))}
            />
            <LinkButton
              label="compare"
              title={
                ticked.length >= 2
                  ? `insert %model_compare for ${ticked.map(n => 'v' + n).join(', ')}`
                  : 'tick two or more versions to compare them'
              }
              disabled={ticked.length < 2}
              onClick={() => actions.insert(compareMagic(summary.name, ticked))}
            />
          </div>
          <ul className="jp-nbmodel-versions">
            {state.versions.map(v => (
              <VersionRow
                key={v.version}
                model={model}
                actions={actions}
                v={v}
                state={state}
                canDeploy={model.features.deployments}
              />
            ))}
          </ul>
          {state.loading && <div className="jp-nbmodel-hint">Loading versions…</div>}
          {!state.loading && hasMore(state.versions.length, state.total) && (
            <button
              type="button"
              className="jp-mod-styled jp-nbmodel-more"
              onClick={() => void model.more(summary.name)}
            >
              Show more ({state.versions.length} of {state.total})
            </button>
          )}
        </div>
      )}
    </li>
  );
}

/** A canary's split (a bar and `iris/3 75% · iris/4 25% canary`), a shadow, or how one ended. */
function Rollout(props: { d: IDeploymentLike }): JSX.Element | null {
  const view = rolloutView(props.d);
  if (!view) {
    return null;
  }
  return (
    <div className={`jp-nbmodel-rollout jp-mod-${view.kind}`} data-rollout={view.kind} title={view.text}>
      {view.share !== null && (
        <div
          className="jp-nbmodel-split"
          role="meter"
          aria-label="share of requests sent to the candidate"
          aria-valuemin={0}
          aria-valuemax={100}
          aria-valuenow={view.share}
        >
          <div className="jp-nbmodel-split-candidate" style={{ width: `${view.share}%` }} />
        </div>
      )}
      <span className="jp-nbmodel-rollout-text">{view.text}</span>
    </div>
  );
}

function Deployments(props: { model: SidebarModel }): JSX.Element | null {
  const { model } = props;
  if (!model.features.deployments) {
    return null;
  }
  return (
    <section className="jp-nbmodel-section" aria-label="Deployments">
      <h3>Deployments</h3>
      {!model.deployments.length && (
        <div className="jp-nbmodel-hint">None running. Use “deploy…” on a version.</div>
      )}
      <ul>
        {model.deployments.map((d, i) => {
          const label = deploymentLabel(d);
          const health = deploymentHealth(d);
          return (
            <li key={i} className="jp-nbmodel-deployment" data-deployment={label}>
              <span
                className={`jp-nbmodel-health jp-mod-${health.split(' ')[0] || 'unknown'}`}
                title={health}
              />
              <span className="jp-nbmodel-name">{label}</span>
              {d.version !== undefined && d.version !== null && (
                <span className="jp-nbmodel-count">v{String(d.version)}</span>
              )}
              <span className="jp-nbmodel-age">{health}</span>
              {d.url && (
                <a href={d.url} target="_blank" rel="noreferrer" className="jp-nbmodel-url">
                  {d.url}
                </a>
              )}
              <Rollout d={d} />
              {d.error && <div className="jp-nbmodel-advice">{String(d.error)}</div>}
              <LinkButton
                label="stop…"
                warn
                title={`stop ${label}`}
                onClick={async () => {
                  if (await askStop(label, d.url)) {
                    await act(model, 'Could not stop the deployment', async () => {
                      const reply = await api.stop(label);
                      const what = Array.isArray(reply.stopped) ? reply.stopped.join(', ') : label;
                      return `stopped ${what}`;
                    });
                  }
                }}
              />
            </li>
          );
        })}
      </ul>
    </section>
  );
}

function Alerts(props: { model: SidebarModel }): JSX.Element | null {
  const { model } = props;
  if (!model.features.alerts) {
    return null;
  }
  return (
    <section className="jp-nbmodel-section" aria-label="Alerts">
      <h3>Open alerts</h3>
      {!model.alerts.length && <div className="jp-nbmodel-hint">No open alerts.</div>}
      <ul>
        {model.alerts.map((a, i) => (
          <li key={i} className="jp-nbmodel-alert" title={alertText(a)}>
            {alertText(a)}
          </li>
        ))}
      </ul>
    </section>
  );
}

/** Where the store came from, in words that name the notebooks it serves. */
function originText(store: IStoreInfo): string {
  const folder = store.folder !== undefined ? ` (notebooks in ${store.folder})` : '';
  switch (store.origin) {
    case 'default':
      // The path above already names the folder.
      return "the default: mlflow.db in the notebook's folder";
    case 'MLFLOW_TRACKING_URI':
      return 'from MLFLOW_TRACKING_URI, for every notebook';
    case 'set_store':
      return 'chosen here with "change", for this sidebar only';
    default:
      return `from ${store.origin}${folder}`;
  }
}

/** With notebooks open in several folders, which folder's store the sidebar shows. */
function FolderSwitch(props: { model: SidebarModel }): JSX.Element {
  const { model } = props;
  return (
    <label className="jp-nbmodel-folder-switch">
      <span>Notebooks in</span>
      <select
        className="jp-mod-styled"
        aria-label="show the store of the notebooks in"
        value={model.folder ?? ''}
        onChange={ev => void model.follow(ev.target.value)}
      >
        {model.folders.map(f => {
          const info = model.storesOf.get(f);
          return (
            <option key={f} value={f} title={info ? storeLocation(info) : ''}>
              {folderLabel(f)}
              {info ? ` → ${storeLocation(info)}` : ''}
            </option>
          );
        })}
      </select>
    </label>
  );
}

function StoreField(props: { model: SidebarModel }): JSX.Element {
  const { model } = props;
  const [editing, setEditing] = React.useState(false);
  const [text, setText] = React.useState('');
  const store = model.store;
  const use = async (uri: string | null) => {
    try {
      const info = await api.setStore(uri);
      model.say(`The sidebar now reads ${info.uri}`);
      setEditing(false);
    } catch (err) {
      const e = err as ApiError;
      await showErrorMessage('Could not use that store', e.message + '\n\n' + errorAdvice(e));
    }
    await model.refresh();
  };
  return (
    <div className="jp-nbmodel-store">
      {!editing ? (
        <div className="jp-nbmodel-store-line">
          <span className="jp-nbmodel-store-label">Store</span>
          <code
            className="jp-nbmodel-store-uri"
            data-uri={store?.uri ?? ''}
            title={store ? `${store.uri} (from ${store.origin})` : ''}
          >
            {store ? storeLocation(store) : '…'}
          </code>
          <LinkButton
            label="change"
            title="show models of another store"
            onClick={() => {
              setText(store?.uri ?? '');
              setEditing(true);
            }}
          />
        </div>
      ) : (
        <form
          className="jp-nbmodel-store-form"
          onSubmit={ev => {
            ev.preventDefault();
            void use(text.trim());
          }}
        >
          <input
            className="jp-mod-styled"
            aria-label="store URI"
            value={text}
            placeholder="sqlite:///mlflow.db or http://host:5000"
            onChange={ev => setText(ev.target.value)}
            autoFocus
          />
          <div className="jp-nbmodel-store-buttons">
            <button type="submit" className="jp-mod-styled jp-mod-accept">
              Use
            </button>
            <button type="button" className="jp-mod-styled" onClick={() => void use(null)}>
              Default
            </button>
            <button type="button" className="jp-mod-styled jp-mod-reject" onClick={() => setEditing(false)}>
              Cancel
            </button>
          </div>
          <small>
            This changes what the sidebar shows. Kernels choose their store with %model_store URI.
          </small>
        </form>
      )}
      {store && !editing && (
        <small className="jp-nbmodel-origin">
          {originText(store)}
        </small>
      )}
      {!editing && model.folders.length > 1 && <FolderSwitch model={model} />}
    </div>
  );
}

export function ModelsView(props: { model: SidebarModel; actions: IActions }): JSX.Element {
  const { model, actions } = props;
  return (
    <UseSignal signal={model.changed}>
      {() => (
        <div className="jp-nbmodel-view">
          <header className="jp-nbmodel-header">
            <h2>Models</h2>
            <span className="jp-nbmodel-updated">
              {model.refreshing ? 'refreshing…' : model.updated ? `updated ${age(model.updated.toISOString())}` : ''}
            </span>
            <button
              type="button"
              className="jp-nbmodel-refresh jp-ToolbarButtonComponent"
              title="Refresh"
              aria-label="Refresh models"
              onClick={() => void model.refresh()}
            >
              <refreshIcon.react tag="span" />
            </button>
          </header>
          <StoreField model={model} />
          {model.notice && (
            <div className="jp-nbmodel-notice" role="status">
              {model.notice}
              <button
                type="button"
                className="jp-nbmodel-link"
                aria-label="dismiss"
                onClick={() => model.say('')}
              >
                ×
              </button>
            </div>
          )}
          {model.error && <ErrorBox error={model.error} what="Cannot list the models" />}
          {model.loading && !model.error && (
            <div className="jp-nbmodel-hint">
              Loading models… (the first load starts MLflow and takes a few seconds)
            </div>
          )}
          {!model.loading && !model.error && model.models.length === 0 && (
            <div className="jp-nbmodel-empty">{emptyMessage(model.store)}</div>
          )}
          <ul className="jp-nbmodel-models">
            {model.models.map(m => (
              <ModelItem key={m.name} model={model} actions={actions} summary={m} />
            ))}
          </ul>
          <Deployments model={model} />
          <Alerts model={model} />
        </div>
      )}
    </UseSignal>
  );
}

/** The Lumino widget in the left area; it polls only while visible. */
export class ModelsPanel extends ReactWidget {
  readonly model = new SidebarModel();
  private _timer: number | null = null;

  constructor(private actions: IActions) {
    super();
    this.id = 'nbmodel-sidebar';
    this.addClass('jp-nbmodel-panel');
  }

  render(): JSX.Element {
    return <ModelsView model={this.model} actions={this.actions} />;
  }

  protected onAfterShow(msg: Message): void {
    super.onAfterShow(msg);
    void this.model.refresh();
    this._start();
  }

  protected onBeforeHide(msg: Message): void {
    this._stop();
    super.onBeforeHide(msg);
  }

  protected onAfterAttach(msg: Message): void {
    super.onAfterAttach(msg);
    if (this.isVisible) {
      void this.model.refresh();
      this._start();
    }
  }

  protected onBeforeDetach(msg: Message): void {
    this._stop();
    super.onBeforeDetach(msg);
  }

  dispose(): void {
    this._stop();
    super.dispose();
  }

  private _start(): void {
    if (this._timer === null) {
      this._timer = window.setInterval(() => {
        if (this.isVisible && !document.hidden) {
          void this.model.refresh();
        }
      }, REFRESH_MS);
    }
  }

  private _stop(): void {
    if (this._timer !== null) {
      window.clearInterval(this._timer);
      this._timer = null;
    }
  }
}
