import { Page } from '../ui.tsx';

export function Devices() {
  return <Page title="Devices">{null}</Page>;
}
