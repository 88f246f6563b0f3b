import { Page } from '../ui.tsx';

export function Events() {
  return <Page title="Events">{null}</Page>;
}
