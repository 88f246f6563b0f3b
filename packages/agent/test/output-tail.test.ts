// OutputTail tests: the tail must stay bounded whatever is pushed, and decode cleanly.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { OUTPUT_TAIL_MAX_BYTES } from '@garrison/protocol';
import { OutputTail } from '../src/output-tail.ts';

test('keeps everything below the limit, without a marker', () => {
  const t = new OutputTail(100);
  t.push(Buffer.from('hello '));
  t.push(Buffer.from('world'));
  assert.equal(t.text(), 'hello world');
  assert.equal(t.totalBytes, 11);
});

test('defaults to the protocol limit', () => {
  assert.equal(new OutputTail().maxBytes, OUTPUT_TAIL_MAX_BYTES);
});

test('keeps the last N bytes of many small chunks', () => {
  const t = new OutputTail(10);
  for (let i = 0; i < 1000; i++) t.push(Buffer.from(String(i % 10)));
  assert.equal(t.totalBytes, 1000);
  assert.equal(t.text(), '…[truncated 990 bytes]\n0123456789');
});

test('a chunk larger than the limit keeps only its end', () => {
  const t = new OutputTail(4);
  t.push(Buffer.from('ab'));
  t.push(Buffer.from('0123456789'));
  assert.equal(t.text(), '…[truncated 8 bytes]\n6789');
  t.push(Buffer.from('x'));
  assert.equal(t.text(), '…[truncated 9 bytes]\n789x');
});

test('skips a multi-byte character cut at the start', () => {
  const t = new OutputTail(5);
  t.push(Buffer.from('a€bcd')); // € is 3 bytes: e2 82 ac; the last 5 bytes start inside it
  const text = t.text();
  assert.equal(text, '…[truncated 4 bytes]\nbcd'); // 2 dropped + 2 continuation bytes skipped
  assert.ok(!text.includes('\uFFFD'));
});

test('memory stays bounded with a stream of mid-size chunks', () => {
  const t = new OutputTail(1000);
  const chunk = Buffer.alloc(999, 'x');
  for (let i = 0; i < 10_000; i++) t.push(chunk);
  assert.equal(t.totalBytes, 9_990_000);
  const body = t.text().split('\n')[1];
  assert.equal(body.length, 1000);
});
