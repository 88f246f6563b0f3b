import { Page } from '../ui.tsx';

export function Push() {
  return <Page title="Push installation">{null}</Page>;
}
export function PushJob({ id }: { id: string }) {
  return <Page title={`Push job ${id}`}>{null}</Page>;
}
