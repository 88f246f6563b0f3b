import { Page } from '../ui.tsx';

export function Dashboard() {
  return <Page title="Dashboard">{null}</Page>;
}
