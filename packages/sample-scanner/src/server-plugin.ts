/**
 * The server half of the sample scanner's plug-in: the product, its task types with their
 * settings schemas (which also drive the console's settings form), and its policy type
 * (config.ts: real-time protection, watched folders, exclusions, the action on a
 * detection, the quarantine, the file size limit), every setting lockable.
 */
import { Type } from 'typebox';
import type { ServerPlugin } from '@garrison/server/plugins/plugin';
import { configProblems, DEFAULT_CONFIG, MAX_EXCLUSIONS, MAX_FOLDERS, MAX_RETENTION_DAYS, SETTING_NAMES } from './config.ts';
import { SAMPLE_SCANNER_PRODUCT, SCAN_TASK_TYPE, scanSettingsProblems, UPDATE_DEFINITIONS_TASK_TYPE } from './task-types.ts';

export const ScanSettingsSchema = Type.Object(
  {
    paths: Type.Array(Type.String({ minLength: 1, maxLength: 4096, description: 'An absolute path of a file or folder' }), {
      minItems: 1,
      maxItems: 1000,
      description: 'Files and folders to scan; folders are scanned recursively, symbolic links inside them are not followed',
    }),
    maxFileBytes: Type.Optional(Type.Integer({ minimum: 1, description: 'Skip files larger than this many bytes' })),
  },
  { additionalProperties: false },
);

const AbsolutePath = Type.String({ minLength: 1, maxLength: 4096, description: 'An absolute path' });

export const ScannerPolicySchema = Type.Object(
  {
    realTimeProtection: Type.Boolean({ description: 'Scan files in the watched folders as they are written' }),
    watchedFolders: Type.Array(AbsolutePath, { maxItems: MAX_FOLDERS, description: 'Folders watched continuously, with everything below them' }),
    exclusions: Type.Array(Type.String({ minLength: 1, maxLength: 4096 }), {
      maxItems: MAX_EXCLUSIONS,
      description: 'Never scanned, on demand or in real time: an absolute folder or file, an absolute glob (/home/*/cache), or a relative glob matched at any depth (*.iso)',
    }),
    detectionAction: Type.Union([Type.Literal('report'), Type.Literal('quarantine')], { description: 'What to do with an infected file: report it, or move it to the quarantine folder' }),
    quarantineFolder: Type.Union([AbsolutePath, Type.Null()], { description: "Where quarantined files go; null: the product's own folder (DIR/quarantine)" }),
    maxFileBytes: Type.Union([Type.Integer({ minimum: 1 }), Type.Null()], { description: 'Files larger than this are not scanned; null: no limit' }),
    quarantineRetentionDays: Type.Integer({ minimum: 0, maximum: MAX_RETENTION_DAYS, description: 'Quarantined files older than this are deleted; 0 keeps them' }),
  },
  { additionalProperties: false },
);

export const UpdateDefinitionsSettingsSchema = Type.Object({}, { additionalProperties: false });

export const sampleScannerServerPlugin: ServerPlugin = {
  product: {
    id: SAMPLE_SCANNER_PRODUCT,
    name: 'Sample Scanner',
    description: 'Sample security application: a file-scanner service with signature definitions (EICAR test file included)',
  },
  taskTypes: [
    {
      id: SCAN_TASK_TYPE,
      name: 'Scan',
      description: 'Scans files and folders on demand; reports progress, and each detection as an event. A scan that finds something ends with warnings.',
      settingsSchema: ScanSettingsSchema,
      validate: scanSettingsProblems,
    },
    {
      id: UPDATE_DEFINITIONS_TASK_TYPE,
      name: 'Update definitions',
      description: 'Makes the scanner load the signature definitions installed from the repository (the sample-scanner-definitions package) and reports their version.',
      settingsSchema: UpdateDefinitionsSettingsSchema,
    },
  ],
  policyType: {
    settingsSchema: ScannerPolicySchema,
    defaults: structuredClone(DEFAULT_CONFIG) as unknown as Record<string, unknown>,
    lockable: [...SETTING_NAMES],
    validate: configProblems,
  },
};
