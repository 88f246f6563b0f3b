import { Page } from '../ui.tsx';

export function TaskEdit({ id }: { id?: string }) {
  return <Page title={id ? 'Edit task' : 'New task'}>{null}</Page>;
}
