import { Page } from '../ui.tsx';

export function Deployments() {
  return <Page title="Deployments">{null}</Page>;
}
