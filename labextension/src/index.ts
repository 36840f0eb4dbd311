/**
 * nbmodel's JupyterLab extension: a "Models" sidebar over the MLflow model registry, with
 * commands to open and refresh it. The work happens in nbmodel's jupyter-server routes; this
 * side shows, asks for confirmation, and writes magics into notebooks.
 */
import {
  ILayoutRestorer,
  JupyterFrontEnd,
  JupyterFrontEndPlugin
} from '@jupyterlab/application';
import { ICommandPalette, showErrorMessage } from '@jupyterlab/apputils';
import { INotebookTracker, NotebookActions } from '@jupyterlab/notebook';
import { LabIcon } from '@jupyterlab/ui-components';

import modelsSvg from '../style/models.svg';
import { notebookFolder, notebookFolders, withLoadExt } from './logic';
import { ModelsPanel } from './panel';

export const modelsIcon = new LabIcon({ name: 'nbmodel:models', svgstr: modelsSvg });

namespace CommandIDs {
  export const open = 'nbmodel:open';
  export const refresh = 'nbmodel:refresh';
  export const insert = 'nbmodel:insert-magic';
}

/**
 * Put `text` into a new code cell below the active cell of the current notebook and show it.
 * Returns false (and says what to do) when no notebook is open.
 */
export function insertIntoNotebook(
  app: JupyterFrontEnd,
  tracker: INotebookTracker | null,
  text: string
): boolean {
  const panel = tracker?.currentWidget;
  if (!panel) {
    void showErrorMessage(
      'No notebook to insert into',
      `Open a notebook, then insert again. The magic was:\n\n${text}`
    );
    return false;
  }
  const notebook = panel.content;
  // A notebook that never loaded nbmodel would answer "Line magic function not found".
  const sources = notebook.widgets.map(c => c.model.sharedModel.getSource());
  NotebookActions.insertBelow(notebook);
  const cell = notebook.activeCell;
  if (cell) {
    cell.model.sharedModel.setSource(withLoadExt(text, sources));
  }
  app.shell.activateById(panel.id);
  notebook.mode = 'edit';
  return true;
}

/**
 * Keep the sidebar on the store of the active notebook: JupyterLab starts a notebook's kernel in
 * the notebook's folder, so that folder decides which store its magics use. The open notebooks'
 * folders feed the sidebar's switch.
 */
function followNotebooks(tracker: INotebookTracker, panel: ModelsPanel): void {
  const folders = () => {
    const paths: string[] = [];
    tracker.forEach(nb => paths.push(nb.context.path));
    void panel.model.setFolders(notebookFolders(paths));
  };
  const follow = () => {
    const current = tracker.currentWidget;
    if (current) {
      void panel.model.follow(notebookFolder(current.context.path));
    }
    folders();
  };
  tracker.currentChanged.connect(follow);
  tracker.widgetAdded.connect((_, nb) => {
    nb.disposed.connect(folders);
    nb.context.pathChanged.connect(follow);
    folders();
  });
  follow();
}

const plugin: JupyterFrontEndPlugin<void> = {
  id: 'nbmodel:sidebar',
  description: 'A Models sidebar over nbmodel and the MLflow model registry',
  autoStart: true,
  optional: [INotebookTracker, ILayoutRestorer, ICommandPalette],
  activate: (
    app: JupyterFrontEnd,
    tracker: INotebookTracker | null,
    restorer: ILayoutRestorer | null,
    palette: ICommandPalette | null
  ) => {
    const panel = new ModelsPanel({
      insert: text => {
        insertIntoNotebook(app, tracker, text);
      }
    });
    if (tracker) {
      followNotebooks(tracker, panel);
    }
    panel.title.icon = modelsIcon;
    panel.title.caption = 'Models';
    app.shell.add(panel, 'left', { rank: 650 });
    if (restorer) {
      restorer.add(panel, 'nbmodel-sidebar');
    }

    app.commands.addCommand(CommandIDs.open, {
      label: 'Show the Models Sidebar',
      icon: modelsIcon,
      execute: () => app.shell.activateById(panel.id)
    });
    app.commands.addCommand(CommandIDs.refresh, {
      label: 'Refresh the Models Sidebar',
      execute: () => panel.model.refresh()
    });
    app.commands.addCommand(CommandIDs.insert, {
      label: 'Insert an nbmodel Magic',
      execute: args => insertIntoNotebook(app, tracker, String(args.text ?? ''))
    });
    if (palette) {
      palette.addItem({ command: CommandIDs.open, category: 'nbmodel' });
      palette.addItem({ command: CommandIDs.refresh, category: 'nbmodel' });
    }
  }
};

export default plugin;
