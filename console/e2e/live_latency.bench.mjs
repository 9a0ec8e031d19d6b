// benchmarks/bench_console.py --page: open the console in Debian's Chromium (playwright-core) and note,
// with a DOM mutation observer in the page, the wall time (Date.now(), this host's clock) at which each
// text first appears in the live panel's feed. Prints {"ready": true} once the page follows the live
// stream, then waits for a line on stdin and prints {"ok": true, "seen": {text: epoch_ms}}.
//
// Environment: CONSOLE_URL, USER_DATA_DIR, CHROMIUM (default /usr/bin/chromium).
import { createInterface } from "node:readline";
import { chromium } from "playwright-core";

const url = process.env.CONSOLE_URL;
const userDataDir = process.env.USER_DATA_DIR;
if (!url || !userDataDir) {
  console.error("CONSOLE_URL and USER_DATA_DIR are required");
  process.exit(2);
}
const context = await chromium.launchPersistentContext(userDataDir, {
  executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium",
  headless: true,
  args: ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking"],
  viewport: { width: 1440, height: 900 },
});
try {
  const page = context.pages()[0] ?? (await context.newPage());
  await page.goto(url);
  await page.getByText("● live").waitFor({ timeout: 30000 });
  const panel = page.getByTestId("live-panel");
  await panel.waitFor();
  await page.evaluate(() => {
    const seen = {};
    window.__seen = seen;
    const note = () => {
      const now = Date.now();
      for (const li of document.querySelectorAll('[data-testid="live-panel"] .feed li')) {
        const match = li.textContent.match(/\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}\.\d{3} UTC/);
        if (match && li.textContent.includes("fills.v1 fill") && !(match[0] in seen)) seen[match[0]] = now;
      }
    };
    new MutationObserver(note).observe(document.querySelector('[data-testid="live-panel"]'), {
      childList: true,
      subtree: true,
      characterData: true,
    });
  });
  console.log(JSON.stringify({ ready: true }));
  const lines = createInterface({ input: process.stdin });
  for await (const _ of lines) break;
  const seen = await page.evaluate(() => window.__seen);
  console.log(JSON.stringify({ ok: true, seen }));
} catch (error) {
  console.log(JSON.stringify({ ok: false, error: String(error) }));
  process.exitCode = 1;
} finally {
  await context.close();
}
