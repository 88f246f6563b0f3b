/**
 * Browser tests' tools: Debian's Chromium driven by playwright-core (no browser download),
 * trusting only the test server's certificate key, recording every console error and page
 * error so that a test can assert there were none, and checking pages for unlabelled controls
 * and horizontal overflow; and the console's build, made once for test files run in parallel.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { mkdir, open, rm, stat } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core';

export const CHROMIUM = process.env.GARRISON_CHROMIUM ?? ['/usr/bin/chromium', '/usr/bin/chromium-browser'].find((p) => existsSync(p));
export const chromiumSkip = CHROMIUM ? false : 'Chromium not found (apt-get install chromium, or set GARRISON_CHROMIUM): browser tests skipped';
export const SCREENSHOTS = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../../test-results/console');
const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');

/**
 * Builds the console if its sources changed since the last build (as npm install does). Test
 * files run in parallel: a lock file makes them build one after the other, so that no build
 * empties dist/ under a server another file already started (the later one finds the build
 * current and does nothing).
 */
export async function buildConsole(): Promise<void> {
  const lock = path.join(os.tmpdir(), `garrison-console-build-${createHash('sha256').update(ROOT).digest('hex').slice(0, 12)}.lock`);
  const deadline = Date.now() + 120_000;
  for (;;) {
    try {
      await (await open(lock, 'wx')).close();
      break;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      // A lock left by a killed run is taken over after a minute.
      const age = await stat(lock).then((s) => Date.now() - s.mtimeMs, () => 0);
      if (age > 60_000) await rm(lock, { force: true });
      if (Date.now() > deadline) throw new Error(`console build: ${lock} is held for too long`);
      await new Promise((r) => setTimeout(r, 200));
    }
  }
  try {
    const child = spawn(process.execPath, [path.join(ROOT, 'scripts/build-console.js')], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d));
    child.stderr.on('data', (d: Buffer) => (out += d));
    const code = await new Promise<number | null>((r) => child.once('exit', r));
    assert.equal(code, 0, `console build failed:\n${out}`);
  } finally {
    await rm(lock, { force: true });
  }
}

export interface TestBrowser {
  browser: Browser;
  context: BrowserContext;
  page: Page;
  /** Console errors, page errors and failed requests seen so far. */
  problems: string[];
  screenshot(name: string): Promise<void>;
  close(): Promise<void>;
}

export async function openBrowser(baseURL: string, serverKeyPin: string, viewport = { width: 1366, height: 900 }): Promise<TestBrowser> {
  await mkdir(SCREENSHOTS, { recursive: true });
  const browser = await chromium.launch({
    executablePath: CHROMIUM!,
    headless: true,
    args: [
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
      // Trust the test server's certificate by its key only, as agents and the CLI pin it.
      `--ignore-certificate-errors-spki-list=${serverKeyPin.replace(/^sha256\/\//, '')}`,
    ],
  });
  const context = await browser.newContext({ baseURL, viewport, acceptDownloads: true });
  const page = await context.newPage();
  const problems: string[] = [];
  page.on('console', (m) => {
    if (m.type() === 'error' || m.type() === 'warning') problems.push(`console ${m.type()}: ${m.text()}`);
  });
  page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
  return {
    browser,
    context,
    page,
    problems,
    async screenshot(name) {
      await page.screenshot({ path: path.join(SCREENSHOTS, `${name}.png`), fullPage: true });
    },
    async close() {
      // Playwright gives each launch a new empty profile and removes it at close.
      await browser.close();
    },
  };
}

/** Each page: no unlabelled control, no sideways scrolling, and a screenshot. */
export async function checkPage(b: TestBrowser, name: string): Promise<void> {
  // Not 'networkidle': the live-update stream keeps a request open. Reads are done when no
  // loading indicator is left.
  await b.page.waitForLoadState('load');
  await b.page.locator('.loading').first().waitFor({ state: 'detached' });
  await b.screenshot(name);
  const audit = await auditPage(b.page);
  assert.deepEqual(audit.unlabelled, [], `${name}: controls without an accessible name`);
  assert.deepEqual(audit.overflowX, [], `${name}: the page scrolls sideways`);
  assert.deepEqual(await axeViolations(b.page), [], `${name}: axe-core finds serious or critical accessibility violations`);
}

const AXE_SOURCE = readFileSync(createRequire(import.meta.url).resolve('axe-core/axe.min.js'), 'utf8');

/**
 * axe-core's serious and critical violations on the page as it is now (an open dialog
 * included), one line each: the rule, its help, and the first nodes it names. Minor and
 * moderate findings are left to review; these two levels block a user of assistive technology.
 */
export async function axeViolations(page: Page): Promise<string[]> {
  if (!(await page.evaluate('typeof window.axe !== "undefined"'))) await page.evaluate(AXE_SOURCE); // evaluated over the DevTools protocol: the console's CSP forbids an inline script tag
  const found = (await page.evaluate(`axe.run(document, { resultTypes: ['violations'] }).then((r) => r.violations
    .filter((v) => v.impact === 'serious' || v.impact === 'critical')
    .map((v) => v.impact + ' ' + v.id + ': ' + v.help + ' — ' + v.nodes.slice(0, 3).map((n) => n.target.join(' ')).join(' | ')))`)) as string[];
  return found;
}

/** Form controls without an accessible name, and whether the page scrolls sideways. */
export async function auditPage(page: Page): Promise<{ unlabelled: string[]; overflowX: string[] }> {
  // Runs in the page; written as source text because this file is type-checked without the DOM library.
  return page.evaluate(`(() => {
    const unlabelled = [];
    for (const el of document.querySelectorAll('input, select, textarea, button')) {
      if (el.type === 'hidden' || el.closest('dialog:not([open])')) continue;
      const labelled = el.labels?.length || el.getAttribute('aria-label') || el.getAttribute('aria-labelledby') || el.getAttribute('title') || (el.tagName === 'BUTTON' && el.textContent.trim());
      if (!labelled) unlabelled.push(el.outerHTML.slice(0, 120));
    }
    // What sticks out to the right, when the page scrolls sideways.
    const overflowX = [];
    if (document.documentElement.scrollWidth > window.innerWidth + 1) {
      for (const el of document.querySelectorAll('main *, header *')) {
        if (el.getBoundingClientRect().right > window.innerWidth + 1 && !el.closest('.table-wrap')) overflowX.push(el.tagName.toLowerCase() + '.' + el.className + ' ' + Math.round(el.getBoundingClientRect().right));
        if (overflowX.length >= 8) break;
      }
      if (!overflowX.length) overflowX.push('document ' + document.documentElement.scrollWidth);
    }
    return { unlabelled, overflowX };
  })()`);
}
