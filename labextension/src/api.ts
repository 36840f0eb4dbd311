/**
 * Calls to nbmodel's jupyter-server routes (`/nbmodel/api/...`, see nbmodel/openapi.yaml).
 * ServerConnection adds the token and XSRF headers, so the routes stay behind
 * jupyter_server's authentication.
 */
import { URLExt } from '@jupyterlab/coreutils';
import { ServerConnection } from '@jupyterlab/services';

import {
  folderQuery,
  IAlertLike,
  IApiErrorLike,
  IDeploymentLike,
  IFeatures,
  IModelPage,
  IModelSummary,
  IStoreInfo
} from './logic';

/** A failed call, with the server's error kind (`retired`, `store`, ...) and message. */
export class ApiError extends Error implements IApiErrorLike {
  constructor(
    readonly status: number,
    readonly kind: string,
    message: string
  ) {
    super(message);
  }
}

/**
 * The notebook folder (relative to the server's root) whose store the routes answer about;
 * null asks for the Jupyter server's own store.
 */
let folder: string | null = '';

export function setFolder(dir: string | null): void {
  folder = dir;
}

/** `path` with the `dir` query parameter of the folder the sidebar follows. */
function withFolder(path: string, dir: string | null = folder): string {
  return folderQuery(path, dir);
}

export async function requestAPI<T>(
  path: string,
  init: RequestInit = {},
  settings: ServerConnection.ISettings = ServerConnection.makeSettings()
): Promise<T> {
  const url = URLExt.join(settings.baseUrl, 'nbmodel', 'api', withFolder(path));
  let response: Response;
  try {
    response = await ServerConnection.makeRequest(url, init, settings);
  } catch (error) {
    throw new ApiError(0, 'network', String((error as Error).message || error));
  }
  const text = await response.text();
  let data: any = null;
  if (text.length) {
    try {
      data = JSON.parse(text);
    } catch {
      data = null;
    }
  }
  if (!response.ok) {
    if (data && data.error) {
      throw new ApiError(response.status, data.error.kind, data.error.message);
    }
    if (response.status === 404) {
      // Jupyter's own HTML 404: the routes are not installed in this server.
      throw new ApiError(404, 'no-extension', 'the nbmodel routes are not on this Jupyter server');
    }
    if (response.status === 403) {
      throw new ApiError(403, 'forbidden', 'the Jupyter server refused the request');
    }
    throw new ApiError(response.status, 'http', `${response.status} ${response.statusText}`);
  }
  return data as T;
}

function post<T>(path: string, body: unknown): Promise<T> {
  return requestAPI<T>(path, { method: 'POST', body: JSON.stringify(body) });
}

const enc = encodeURIComponent;

export interface IModelsReply {
  store: IStoreInfo;
  models: IModelSummary[];
  features: IFeatures;
}

export interface IAliasMove {
  name: string;
  alias: string;
  from: number | null;
  to: number | null;
  at: string;
  by: string;
  why: string;
  kind: string;
  changed: boolean;
}

/** A running deployment (nbmodel.serving's Deployment.to_dict()). */
export type IDeployment = IDeploymentLike;

/** An open monitoring alert (nbmodel.monitoring's Alert.to_dict()). */
export type IAlert = IAlertLike;

export const api = {
  models: () => requestAPI<IModelsReply>('models'),
  store: () => requestAPI<IStoreInfo>('store'),
  /** The store a kernel in `dir` uses, whatever folder the sidebar follows now. */
  storeOf: (dir: string) => requestAPI<IStoreInfo>(withFolder('store', dir)),
  setStore: (uri: string | null) =>
    requestAPI<IStoreInfo>('store', { method: 'PUT', body: JSON.stringify({ uri }) }),
  model: (name: string, limit: number, offset = 0) =>
    requestAPI<IModelPage>(`models/${enc(name)}?limit=${limit}&offset=${offset}`),
  aliasTrail: (name: string, alias?: string) =>
    requestAPI<{ name: string; moves: IAliasMove[] }>(
      `models/${enc(name)}/aliases` + (alias ? `?alias=${enc(alias)}` : '')
    ),
  setAlias: (name: string, version: number, alias: string, message = '', force = false) =>
    post<IAliasMove>(`models/${enc(name)}/aliases`, { alias, version, message, force }),
  rollback: (name: string, alias: string, to: number | null, message = '') =>
    post<IAliasMove>(`models/${enc(name)}/rollback`, { alias, to, message }),
  retire: (name: string, version: number, message = '', force = false) =>
    post<unknown>(`models/${enc(name)}/versions/${version}/retire`, { message, force }),
  deployments: () => requestAPI<{ deployments: IDeployment[] }>('deployments'),
  deploy: (ref: string, alias: string, port: number | null) =>
    post<{ deployment: IDeployment }>('deployments', port === null ? { ref, alias } : { ref, alias, port }),
  stop: (target: string) =>
    requestAPI<{ stopped: string[] | string }>(`deployments/${enc(target)}`, { method: 'DELETE' }),
  alerts: () => requestAPI<{ alerts: IAlert[] }>('alerts')
};
