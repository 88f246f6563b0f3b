import { Page } from '../ui.tsx';

export function Tasks() {
  return <Page title="Tasks">{null}</Page>;
}
