/**
 * The sidebar's state: what the store holds, which models are open and how many of their
 * versions are loaded. Views re-render on `changed`; every fetch keeps the last good data on
 * screen so a slow refresh never blanks the panel.
 */
import { ISignal, Signal } from '@lumino/signaling';

import { ApiError, IAlert, IDeployment, api, setFolder } from './api';
import {
  IBranch,
  IFeatures,
  IModelSummary,
  IStoreInfo,
  IVersion,
  PAGE,
  mergePage,
  reloadLimit
} from './logic';

export interface IOpenModel {
  versions: IVersion[];
  total: number;
  aliases: Record<string, number>;
  /** The model's branches, main first (empty where the server has none). */
  branches: IBranch[];
  loading: boolean;
  error: ApiError | null;
}

function asApiError(err: unknown): ApiError {
  if (err instanceof ApiError) {
    return err;
  }
  return new ApiError(0, 'internal', String((err as Error)?.message ?? err));
}

export class SidebarModel {
  store: IStoreInfo | null = null;
  models: IModelSummary[] = [];
  features: IFeatures = { deployments: false, alerts: false };
  deployments: IDeployment[] = [];
  alerts: IAlert[] = [];
  /** True until the first answer arrives. */
  loading = true;
  refreshing = false;
  error: ApiError | null = null;
  /** The last action's outcome, shown above the list ("iris@production rolled back ..."). */
  notice = '';
  updated: Date | null = null;
  readonly open = new Map<string, IOpenModel>();
  /** Versions ticked for a diff, per model. */
  readonly selected = new Map<string, number[]>();

  /**
   * The notebook folder whose store the sidebar shows (relative to the server's root), or null
   * for the Jupyter server's own. Before a notebook is active: the root JupyterLab shows.
   */
  folder: string | null = '';
  /** The folders of the open notebooks: with more than one, the sidebar offers a switch. */
  folders: string[] = [];
  /** The store each of those folders resolves to, once asked. */
  readonly storesOf = new Map<string, IStoreInfo>();

  private _changed = new Signal<this, void>(this);
  private _inFlight: Promise<void> | null = null;

  get changed(): ISignal<this, void> {
    return this._changed;
  }

  emit(): void {
    this._changed.emit();
  }

  /**
   * Show the store of the notebooks in `folder` (the active notebook's). A new folder clears
   * what was open: its models live in another store.
   */
  follow(folder: string | null): Promise<void> {
    if (folder === this.folder) {
      return Promise.resolve();
    }
    this.folder = folder;
    setFolder(folder);
    this.open.clear();
    this.selected.clear();
    this.store = null;
    this.models = [];
    this.loading = true;
    this.emit();
    // A refresh under way asked about the previous folder: wait for it, then ask again.
    const running = this._inFlight ?? Promise.resolve();
    return running.then(() => this.refresh());
  }

  /** The open notebooks' folders changed: learn each one's store for the switch. */
  async setFolders(folders: string[]): Promise<void> {
    this.folders = folders;
    this.emit();
    await Promise.all(
      folders
        .filter(f => !this.storesOf.has(f))
        .map(async f => {
          try {
            this.storesOf.set(f, await api.storeOf(f));
          } catch {
            // The switch shows the folder without its store.
          }
        })
    );
    this.emit();
  }

  /** Reload everything shown; calls made while one is running share it. */
  refresh(): Promise<void> {
    if (!this._inFlight) {
      this._inFlight = this._refresh().finally(() => {
        this._inFlight = null;
      });
    }
    return this._inFlight;
  }

  private async _refresh(): Promise<void> {
    this.refreshing = true;
    this.emit();
    const asked = this.folder;
    try {
      const reply = await api.models();
      if (asked !== this.folder) {
        return; // the sidebar moved to another folder meanwhile; its own refresh follows
      }
      if (asked !== null) {
        this.storesOf.set(asked, reply.store);
      }
      this.store = reply.store;
      this.models = reply.models;
      this.features = reply.features;
      this.error = null;
      const names = new Set(this.models.map(m => m.name));
      for (const name of [...this.open.keys()]) {
        if (!names.has(name)) {
          this.open.delete(name);
        }
      }
      await Promise.all([
        ...[...this.open.keys()].map(name => this.reloadModel(name)),
        this.loadDeployments(),
        this.loadAlerts()
      ]);
      this.updated = new Date();
    } catch (err) {
      this.error = asApiError(err);
    } finally {
      this.loading = false;
      this.refreshing = false;
      this.emit();
    }
  }

  private async loadDeployments(): Promise<void> {
    if (!this.features.deployments) {
      this.deployments = [];
      return;
    }
    try {
      this.deployments = (await api.deployments()).deployments;
    } catch {
      // The section shows its own staleness; the model list matters more.
    }
  }

  private async loadAlerts(): Promise<void> {
    if (!this.features.alerts) {
      this.alerts = [];
      return;
    }
    try {
      this.alerts = (await api.alerts()).alerts;
    } catch {
      // As above.
    }
  }

  async toggle(name: string): Promise<void> {
    if (this.open.has(name)) {
      this.open.delete(name);
      this.emit();
      return;
    }
    this.open.set(name, {
      versions: [],
      total: 0,
      aliases: {},
      branches: [],
      loading: true,
      error: null
    });
    this.emit();
    await this.reloadModel(name);
    this.emit();
  }

  /** Reload an open model's versions, as many as are shown (at least a page). */
  private async reloadModel(name: string): Promise<void> {
    const state = this.open.get(name);
    if (!state) {
      return;
    }
    try {
      const page = await api.model(name, reloadLimit(state.versions.length), 0);
      Object.assign(state, {
        versions: page.versions,
        total: page.total,
        aliases: page.aliases,
        branches: page.branches ?? [],
        error: null
      });
      const present = new Set(page.versions.map(v => v.version));
      const ticked = (this.selected.get(name) ?? []).filter(v => present.has(v));
      this.selected.set(name, ticked);
    } catch (err) {
      state.error = asApiError(err);
    } finally {
      state.loading = false;
    }
  }

  /** Load the next page of an open model's versions. */
  async more(name: string): Promise<void> {
    const state = this.open.get(name);
    if (!state || state.loading) {
      return;
    }
    state.loading = true;
    this.emit();
    try {
      const page = await api.model(name, PAGE, state.versions.length);
      state.versions = mergePage(state.versions, page.versions);
      state.total = page.total;
      state.error = null;
    } catch (err) {
      state.error = asApiError(err);
    } finally {
      state.loading = false;
      this.emit();
    }
  }

  tick(name: string, version: number, on: boolean): void {
    const now = (this.selected.get(name) ?? []).filter(v => v !== version);
    if (on) {
      now.push(version);
    }
    // A diff takes two and a comparison a few: past four, the oldest tick goes.
    this.selected.set(name, now.slice(-4));
    this.emit();
  }

  say(text: string): void {
    this.notice = text;
    this.emit();
  }
}
