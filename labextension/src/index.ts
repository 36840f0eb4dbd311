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
  NotebookActions.insertBelow(notebook);
  const cell = notebook.activeCell;
  if (cell) {
    cell.model.sharedModel.setSource(text);
  }
  app.shell.activateById(panel.id);
  notebook.mode = 'edit';
  return true;
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
