/**
 * Confirmation dialogs for the sidebar's actions. Each asks before anything changes in the
 * store and says what will happen; the value it returns is what the route is called with.
 */
import { Dialog, showDialog } from '@jupyterlab/apputils';
import { Widget } from '@lumino/widgets';

import { IVersion, aliasEntries } from './logic';

/** A small form: labelled inputs, read back by name. */
class FormBody<T> extends Widget implements Dialog.IBodyWidget<T> {
  constructor(
    intro: string,
    private read: (form: HTMLFormElement) => T
  ) {
    super({ node: document.createElement('form') });
    this.addClass('jp-nbmodel-Form');
    const p = document.createElement('p');
    p.textContent = intro;
    this.node.appendChild(p);
    // Enter in a field presses the dialog's accept button, not a page-reloading submit.
    this.node.addEventListener('submit', ev => ev.preventDefault());
  }

  get form(): HTMLFormElement {
    return this.node as HTMLFormElement;
  }

  field(label: string, input: HTMLElement, hint = ''): void {
    const row = document.createElement('label');
    row.className = 'jp-nbmodel-Form-row';
    const span = document.createElement('span');
    span.textContent = label;
    row.appendChild(span);
    row.appendChild(input);
    if (hint) {
      const small = document.createElement('small');
      small.textContent = hint;
      row.appendChild(small);
    }
    this.node.appendChild(row);
  }

  text(name: string, value = '', placeholder = ''): HTMLInputElement {
    const input = document.createElement('input');
    input.className = 'jp-mod-styled';
    input.name = name;
    input.value = value;
    input.placeholder = placeholder;
    return input;
  }

  select(name: string, options: [string, string][], value = ''): HTMLSelectElement {
    const select = document.createElement('select');
    select.className = 'jp-mod-styled';
    select.name = name;
    for (const [val, label] of options) {
      const opt = document.createElement('option');
      opt.value = val;
      opt.textContent = label;
      select.appendChild(opt);
    }
    select.value = value;
    return select;
  }

  checkbox(name: string, label: string): void {
    const row = document.createElement('label');
    row.className = 'jp-nbmodel-Form-check';
    const input = document.createElement('input');
    input.type = 'checkbox';
    input.name = name;
    row.appendChild(input);
    row.appendChild(document.createTextNode(' ' + label));
    this.node.appendChild(row);
  }

  getValue(): T {
    return this.read(this.form);
  }
}

function value(form: HTMLFormElement, name: string): string {
  const el = form.elements.namedItem(name) as HTMLInputElement | HTMLSelectElement | null;
  return el ? el.value.trim() : '';
}

function checked(form: HTMLFormElement, name: string): boolean {
  const el = form.elements.namedItem(name) as HTMLInputElement | null;
  return !!el && el.checked;
}

async function ask<T>(title: string, body: FormBody<T>, accept: string, warn = false) {
  const result = await showDialog({
    title,
    body,
    buttons: [
      Dialog.cancelButton(),
      warn ? Dialog.warnButton({ label: accept }) : Dialog.okButton({ label: accept })
    ],
    focusNodeSelector: 'input, select'
  });
  return result.button.accept ? result.value : null;
}

export interface IAliasChoice {
  alias: string;
  message: string;
  force: boolean;
}

export function askSetAlias(v: IVersion, aliases: Record<string, number>) {
  const current = aliasEntries(aliases)
    .map(([a, n]) => `${a} → ${v.name}/${n}`)
    .join(', ');
  const body = new FormBody<IAliasChoice>(
    `Point an alias at ${v.ref}. Every move is kept in the audit trail` +
      (current ? ` (now: ${current}).` : '.'),
    form => ({
      alias: value(form, 'alias'),
      message: value(form, 'message'),
      force: checked(form, 'force')
    })
  );
  body.field('Alias', body.text('alias', 'production', 'production'));
  body.field('Why', body.text('message', '', 'kept in the audit trail'));
  if (v.retired) {
    body.checkbox('force', `${v.ref} is retired: point the alias at it anyway`);
  }
  return ask(`Set an alias on ${v.ref}`, body, 'Set alias');
}

export interface IRollbackChoice {
  to: number | null;
  message: string;
}

export function askRollback(
  name: string,
  alias: string,
  current: number,
  versions: IVersion[]
) {
  const options: [string, string][] = [['', 'the version that held it before']];
  for (const v of versions) {
    if (v.version !== current && !v.retired) {
      options.push([String(v.version), `${v.ref}` + (v.message ? ` — ${v.message}` : '')]);
    }
  }
  const body = new FormBody<IRollbackChoice>(
    `${name}@${alias} points to ${name}/${current}. Move it back; a deployment that follows ` +
      'the alias switches to the version chosen.',
    form => {
      const to = value(form, 'to');
      return { to: to ? Number(to) : null, message: value(form, 'message') };
    }
  );
  body.field('Back to', body.select('to', options, ''));
  body.field('Why', body.text('message', '', 'kept in the audit trail'));
  return ask(`Roll back ${name}@${alias}?`, body, 'Roll back', true);
}

export interface IRetireChoice {
  message: string;
  force: boolean;
}

export function askRetire(v: IVersion) {
  const body = new FormBody<IRetireChoice>(
    `${v.ref} stays in the history, but deploy and alias refuse it unless forced.` +
      (v.aliases.length ? ` It holds ${v.aliases.join(', ')}: move that first, or force.` : ''),
    form => ({ message: value(form, 'message'), force: checked(form, 'force') })
  );
  body.field('Why', body.text('message', '', 'kept with the version'));
  if (v.aliases.length) {
    body.checkbox('force', `retire it although it holds ${v.aliases.join(', ')}`);
  }
  return ask(`Retire ${v.ref}?`, body, 'Retire', true);
}

export interface IDeployChoice {
  alias: string;
  port: number | null;
}

export function askDeploy(v: IVersion) {
  const body = new FormBody<IDeployChoice>(
    `Point the alias at ${v.ref} and serve it over REST on 127.0.0.1 (MLflow's scoring ` +
      'protocol). The server follows the alias: a later rollback switches it in place.',
    form => {
      const port = value(form, 'port');
      return { alias: value(form, 'alias') || 'production', port: port ? Number(port) : null };
    }
  );
  body.field('Alias', body.text('alias', 'production', 'production'));
  body.field('Port', body.text('port', '', 'any free port'));
  return ask(`Deploy ${v.ref}?`, body, 'Deploy');
}

export async function askStop(label: string, url?: string): Promise<boolean> {
  const result = await showDialog({
    title: `Stop ${label}?`,
    body: `Its REST endpoint${url ? ` (${url})` : ''} stops answering. The versions and aliases stay.`,
    buttons: [Dialog.cancelButton(), Dialog.warnButton({ label: 'Stop' })]
  });
  return result.button.accept;
}

export interface IStoreChoice {
  uri: string | null;
}
