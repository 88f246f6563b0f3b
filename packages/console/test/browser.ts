/**
 * Browser tests' tools: Debian's Chromium driven by playwright-core (no browser download),
 * trusting only the test server's certificate key, recording every console error and page
 * error so that a test can assert there were none, and checking pages for unlabelled controls
 * and horizontal overflow.
 */
import { existsSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core';

export const CHROMIUM = process.env.GARRISON_CHROMIUM ?? ['/usr/bin/chromium', '/usr/bin/chromium-browser'].find((p) => existsSync(p));
export const chromiumSkip = CHROMIUM ? false : 'Chromium not found (apt-get install chromium, or set GARRISON_CHROMIUM): browser tests skipped';
export const SCREENSHOTS = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../../test-results/console');

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
