/**
 * The sample security application of Garrison: a file-scanner service with signature
 * definitions, its management plug-in (agent and server halves) and its package build.
 * See README.md.
 */
export { sampleScannerAgentPlugin } from './agent-plugin.ts';
export { sampleScannerServerPlugin } from './server-plugin.ts';
export { buildScannerPackages, type BuildOptions, type BuiltPackages } from './build-packages.ts';
export { ScannerClient, ScannerError, pingService } from './client.ts';
export { SAMPLE_SCANNER_PRODUCT, DEFINITIONS_PRODUCT, SCAN_TASK_TYPE, UPDATE_DEFINITIONS_TASK_TYPE, type ScanTaskSettings } from './task-types.ts';
