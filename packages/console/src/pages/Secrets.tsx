import { Page } from '../ui.tsx';

export function Secrets() {
  return <Page title="Secrets">{null}</Page>;
}
