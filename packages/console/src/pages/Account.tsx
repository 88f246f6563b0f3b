import { Page } from '../ui.tsx';

export function Account() {
  return <Page title="Account">{null}</Page>;
}
