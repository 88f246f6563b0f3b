// Pure parts: the definitions format, the settings schemas of the server half, socket paths.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { checker } from '@garrison/protocol';
import { compileDefinitions, DefinitionsError, defaultSignatures, EICAR_TEST_STRING, parseDefinitions } from '../src/definitions.ts';
import { socketPathFor } from '../src/paths.ts';
import { sampleScannerServerPlugin, ScanSettingsSchema, UpdateDefinitionsSettingsSchema } from '../src/server-plugin.ts';

test('definitions compile substring and hex patterns to the same bytes', () => {
  const defs = compileDefinitions({
    version: '2026.11.21.1',
    signatures: [
      { name: 'A', kind: 'substring', pattern: 'héllo' },
      { name: 'B', kind: 'hex', pattern: '68 C3 A9\n6c6C 6f' },
    ],
  });
  assert.deepEqual(defs.signatures[0].bytes, defs.signatures[1].bytes);
  assert.equal(defs.maxPatternBytes, 6);
  const eicar = compileDefinitions({ version: '1', signatures: defaultSignatures() }).signatures[0];
  assert.deepEqual(eicar.bytes, Buffer.from(EICAR_TEST_STRING));
});

test('a definitions file with any bad part is refused with the first problem', () => {
  const bad: [unknown, RegExp][] = [
    [[], /JSON object/],
    [{ signatures: [] }, /"version"/],
    [{ version: 'a b', signatures: [] }, /"version"/],
    [{ version: '1' }, /"signatures" must be an array/],
    [{ version: '1', signatures: [null] }, /signature 0: must be an object/],
    [{ version: '1', signatures: [{ name: '', kind: 'hex', pattern: '00' }] }, /"name"/],
    [{ version: '1', signatures: [{ name: 'A', kind: 'regex', pattern: 'x' }] }, /"kind"/],
    [{ version: '1', signatures: [{ name: 'A', kind: 'hex', pattern: 'abc' }] }, /even number/],
    [{ version: '1', signatures: [{ name: 'A', kind: 'hex', pattern: 'zz' }] }, /hexadecimal/],
    [{ version: '1', signatures: [{ name: 'A', kind: 'substring', pattern: '' }] }, /empty pattern/],
    [{ version: '1', signatures: [{ name: 'A', kind: 'substring', pattern: 'x'.repeat(5000) }] }, /longer than/],
    [{ version: '1', signatures: [{ name: 'A', kind: 'substring', pattern: 'x' }, { name: 'A', kind: 'substring', pattern: 'y' }] }, /duplicate name "A"/],
  ];
  for (const [doc, message] of bad) assert.throws(() => compileDefinitions(doc), (err: Error) => err instanceof DefinitionsError && message.test(err.message), JSON.stringify(doc));
  assert.throws(() => parseDefinitions('{'), /not valid JSON/);
});

test('the server half: product, task types and their settings schemas', () => {
  assert.deepEqual(sampleScannerServerPlugin.product.id, 'sample-scanner');
  assert.deepEqual(sampleScannerServerPlugin.taskTypes.map((t) => t.id), ['scan', 'update-definitions']);
  const scan = checker(ScanSettingsSchema);
  assert.ok(scan.check({ paths: ['/home'] }));
  assert.ok(scan.check({ paths: ['/home', 'C:\\Users'], maxFileBytes: 1048576 }));
  for (const bad of [{}, { paths: [] }, { paths: [''] }, { paths: ['/a'], maxFileBytes: 1.5 }, { paths: ['/a'], maxFileBytes: 0 }, { paths: ['/a'], recursive: true }]) {
    assert.ok(!scan.check(bad), JSON.stringify(bad));
  }
  const validate = sampleScannerServerPlugin.taskTypes[0].validate!;
  assert.deepEqual(validate({ paths: ['/home', 'C:\\Users', '\\\\server\\share'] }), []);
  assert.deepEqual(validate({ paths: ['relative', 'also/relative'] }), ['path "relative" is not absolute', 'path "also/relative" is not absolute']);
  const update = checker(UpdateDefinitionsSettingsSchema);
  assert.ok(update.check({}));
  assert.ok(!update.check({ force: true }));
});

test('the socket lives in the product folder, in /tmp when that path is too long, and is a named pipe on Windows', () => {
  assert.equal(socketPathFor('/var/lib/garrison/products/sample-scanner', 'linux'), '/var/lib/garrison/products/sample-scanner/run/scanner.sock');
  const deep = `/${'d'.repeat(120)}`;
  assert.match(socketPathFor(deep, 'linux'), /^\/tmp\/garrison-sample-scanner-[0-9a-f]{24}\.sock$/);
  assert.equal(socketPathFor(deep, 'linux'), socketPathFor(deep, 'linux'));
  assert.notEqual(socketPathFor(deep, 'linux'), socketPathFor(`${deep}x`, 'linux'));
  assert.match(socketPathFor('C:\\ProgramData\\Garrison\\products\\sample-scanner', 'win32'), /^\\\\\.\\pipe\\garrison-sample-scanner-[0-9a-f]{24}$/);
});
