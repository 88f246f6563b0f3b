import { Page } from '../ui.tsx';

export function DeviceDetails({ id }: { id: string }) {
  return <Page title={`Device ${id}`}>{null}</Page>;
}
