/**
 * The server half of the sample scanner's plug-in: the product and its task types with
 * their settings schemas (which also drive the console's settings form).
 */
import { Type } from 'typebox';
import type { ServerPlugin } from '@garrison/server/plugins/plugin';
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
};
