import {
  JupyterFrontEnd,
  JupyterFrontEndPlugin
} from '@jupyterlab/application';

const plugin: JupyterFrontEndPlugin<void> = {
  id: 'nbmodel:sidebar',
  description: 'A Models sidebar over nbmodel',
  autoStart: true,
  activate: (app: JupyterFrontEnd) => {
    console.log('nbmodel sidebar activated');
  }
};

export default plugin;
