import { Page } from '../ui.tsx';

export function Installers() {
  return <Page title="Installers">{null}</Page>;
}
