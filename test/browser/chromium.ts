// What every browser test shares: Debian's Chromium with the flags that work on these machines
// (shared/NOTES.md; playwright adds --headless and a fresh profile), the two viewports the issues name,
// and where screenshots go.
import { existsSync, mkdirSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";
import type { Browser } from "playwright-core";

export const HERE = fileURLToPath(new URL(".", import.meta.url));
export const ARTIFACTS = join(HERE, "artifacts");
export const DESKTOP = { width: 1280, height: 800 };
export const PHONE = { width: 390, height: 844 };

const CHROMIUM = process.env.FLASHLLM_CHROMIUM ?? "/usr/bin/chromium";
const FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"];

/** Fails with what to install when Chromium is missing; makes the screenshot folder. */
export function requireChromium(): void {
  if (!existsSync(CHROMIUM)) {
    throw new Error(
      `Chromium is missing (${CHROMIUM}): the browser tests need it. Install it with "bash scripts/setup-browser.sh" ` +
        `(as root: apt-get install chromium), or point FLASHLLM_CHROMIUM at a Chromium or Chrome binary.`,
    );
  }
  mkdirSync(ARTIFACTS, { recursive: true });
}

/** Headless Chromium with the flags above. */
export function launchChromium(): Promise<Browser> {
  return chromium.launch({ executablePath: CHROMIUM, args: FLAGS, headless: true, timeout: 30_000 });
}
