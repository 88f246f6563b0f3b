import { Page } from '../ui.tsx';

export function TaskDetails({ id }: { id: string }) {
  return <Page title={`Task ${id}`}>{null}</Page>;
}
