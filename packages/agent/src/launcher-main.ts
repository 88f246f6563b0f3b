// The launcher's entry point (see launcher.ts): what the service manager runs.
import { runLauncher } from './launcher.ts';

process.exitCode = await runLauncher(process.argv.slice(2));
