import { Page } from '../ui.tsx';

export function Repository() {
  return <Page title="Repository">{null}</Page>;
}
