// End to end in Debian's Chromium (playwright-core, no downloaded browser): load the console that
// `bot4 serve` serves, check the overview, pause and resume a strategy, refuse a wrong token, press
// the kill switch, confirm, and wait for the risk state HALTED. Screenshots go to SHOTS (docs/images). Driven by
// tests/e2e/test_console_e2e.py, which prepares PostgreSQL and Kafka and checks the API afterwards.
//
// Environment: CONSOLE_URL, CONSOLE_TOKEN, CONSOLE_ACCOUNT, SHOTS, USER_DATA_DIR,
// CHROMIUM (default /usr/bin/chromium). Extend `steps` for the live paper-replay variant.
import { chromium } from "playwright-core";

const url = process.env.CONSOLE_URL;
const token = process.env.CONSOLE_TOKEN;
const account = process.env.CONSOLE_ACCOUNT ?? "main";
const shots = process.env.SHOTS;
const userDataDir = process.env.USER_DATA_DIR;
if (!url || !token || !shots || !userDataDir) {
  console.error("CONSOLE_URL, CONSOLE_TOKEN, SHOTS and USER_DATA_DIR are required");
  process.exit(2);
}

const context = await chromium.launchPersistentContext(userDataDir, {
  executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium",
  headless: true,
  args: [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
  ],
  viewport: { width: 1440, height: 900 },
  timezoneId: "America/New_York", // the page must still show UTC
});
const page = context.pages()[0] ?? (await context.newPage());
const problems = [];
page.on("pageerror", (e) => problems.push(`page error: ${e.message}`));
page.on("console", (m) => {
  if (m.type() === "error" && !m.text().includes("401")) problems.push(`console error: ${m.text()}`);
});
page.on("request", (r) => {
  if (!r.url().startsWith(url)) problems.push(`request left the console: ${r.url()}`);
});
const results = [];
const step = async (name, fn) => {
  const started = Date.now();
  await fn();
  results.push({ step: name, ms: Date.now() - started });
};
const riskRow = page.getByTestId(`risk-${account}`);
const shot = (name) => page.screenshot({ path: `${shots}/console-${name}.png`, fullPage: false });

try {
  await step("the console loads and follows the live topics", async () => {
    await page.goto(url);
    await page.getByTestId("kill-button").waitFor();
    await page.getByText("● live").waitFor({ timeout: 20000 });
    await page.getByTestId("risk-panel").waitFor();
  });
  // The driver starts the trading flow (paper replay) when it reads this line.
  console.log(JSON.stringify({ ready: true }));

  await step("positions, equity and fills update live while the paper replay runs", async () => {
    await riskRow.waitFor({ timeout: 90000 });
    await page.getByTestId("positions-panel").locator("tbody tr").first().waitFor({ timeout: 60000 });
    await page.getByTestId("equity-chart").locator("canvas").first().waitFor({ timeout: 60000 });
    // Nothing was there when the page loaded and the page does not poll: these rows came by the events.
    await page.getByTestId("live-panel").locator(".feed li").first().waitFor({ timeout: 60000 });
    await page.getByTestId("freshness-panel").getByText("binance:BTC/USDT").waitFor();
    const utc = await page.getByTestId("freshness-panel").locator("tbody td").nth(1).innerText();
    if (!utc.endsWith(" UTC") && utc !== "—") throw new Error(`freshness time not shown in UTC: ${utc}`);
    await page.waitForTimeout(1500); // let the charts settle for the screenshot
    await shot("overview");
  });

  let strategy = "";
  await step("a strategy is paused and resumed from the page, each behind its confirmation", async () => {
    const panel = page.getByTestId("strategies-panel");
    const row = panel.locator(`tbody tr[data-testid^="strategy-${account}-"]`).first();
    // The replay is over (previous step): signal rows are written by their own sink, without a live
    // event of their own, so the list may predate the last of them; the panel's reload fetches it.
    if (!(await row.isVisible())) await panel.getByTitle("Reload").click();
    await row.waitFor({ timeout: 30000 });
    strategy = (await row.getAttribute("data-testid")).slice(`strategy-${account}-`.length);
    for (const [button, word, reason, status] of [
      ["Pause…", "PAUSE", "e2e: pause drill", "paused"],
      ["Resume…", "RESUME", "e2e: resume drill", "running"],
    ]) {
      await row.getByRole("button", { name: button }).click();
      const dialog = page.getByRole("dialog");
      if ((await dialog.locator("input[name=strategy]").inputValue()) !== strategy) throw new Error("strategy not preset");
      await dialog.locator("input[name=reason]").fill(reason);
      await dialog.locator("input[name=operator]").fill("e2e-operator");
      await dialog.locator("input[name=token]").fill(token);
      const submit = dialog.getByRole("button", { name: word === "PAUSE" ? "Pause strategy" : "Resume strategy" });
      if (await submit.isEnabled()) throw new Error(`the ${word} button is enabled before ${word} is typed`);
      await dialog.locator("input[name=confirm]").fill(word);
      if (word === "PAUSE") await shot("pause-dialog");
      await submit.click();
      await page.getByTestId("command-notice").waitFor();
      await row.locator("td", { hasText: new RegExp(`^${status}$`) }).waitFor({ timeout: 20000 });
      if (word === "PAUSE") await shot("paused");
      await page.getByTestId("command-notice").getByRole("button", { name: "dismiss" }).click();
    }
  });

  await step("a wrong token is refused in the dialog", async () => {
    await page.getByTestId("kill-button").click();
    const dialog = page.getByRole("dialog");
    await dialog.locator("select[name=account]").selectOption(account);
    await dialog.locator("input[name=reason]").fill("e2e: venue incident drill");
    await dialog.locator("input[name=operator]").fill("e2e-operator");
    await dialog.locator("input[name=token]").fill("wrong-token-0123456789");
    const submit = dialog.getByRole("button", { name: "Halt and cancel all" });
    if (await submit.isEnabled()) throw new Error("the kill button is enabled before KILL is typed");
    await dialog.locator("input[name=confirm]").fill("KILL");
    await shot("kill-dialog");
    await submit.click();
    await dialog.getByRole("alert").getByText("Token refused").waitFor();
    await shot("kill-refused");
  });

  await step("the kill switch with the token halts the account", async () => {
    const dialog = page.getByRole("dialog");
    await dialog.locator("input[name=token]").fill(token);
    await dialog.getByRole("button", { name: "Halt and cancel all" }).click();
    await page.getByTestId("command-notice").waitFor();
    await riskRow.getByText("HALTED").waitFor({ timeout: 20000 });
    await page.getByTestId("overall-state").getByText("HALTED").waitFor();
    await riskRow.locator(".breaker-open", { hasText: "kill_switch" }).waitFor();
    await shot("halted");
  });

  await step("orders with their state history", async () => {
    await page.goto(`${url}#/orders`);
    await page.getByTestId("orders-panel").locator("tbody tr").first().click();
    await page.getByTestId("order-history").locator("tbody tr").first().waitFor();
    await shot("orders");
  });

  await step("decisions with denial reasons and the command audit", async () => {
    await page.goto(`${url}#/decisions`);
    await page.getByTestId("decisions-panel").locator("tbody td", { hasText: "state_changed" }).first().waitFor();
    await page.getByTestId("commands-panel").getByText("e2e: venue incident drill").waitFor();
    await shot("decisions");
  });

  await step("symbol view: candles with our fills", async () => {
    await page.goto(`${url}#/symbol`);
    await page.getByTestId("candle-chart").locator("canvas").first().waitFor();
    await shot("symbol");
  });

  await step("two backtest reports side by side", async () => {
    await page.goto(`${url}#/reports`);
    const boxes = page.getByTestId("reports-panel").locator("input[type=checkbox]:not([disabled])");
    await boxes.nth(0).check();
    await boxes.nth(1).check();
    await page.getByTestId("comparison-panel").locator("tr.differs").first().waitFor();
    await shot("reports");
  });

  await step("model scores, validation runs and dead letters", async () => {
    await page.goto(`${url}#/quality`);
    await page.getByTestId("models-panel").getByText("base_rate:v1").waitFor();
    await page.getByTestId("validation-panel").locator(".empty, tbody tr").first().waitFor();
    await shot("quality");
  });

  if (problems.length) throw new Error(problems.join("\n"));
  console.log(JSON.stringify({ ok: true, results, strategy }));
} catch (error) {
  await page.screenshot({ path: `${shots}/console-failure.png`, fullPage: false }).catch(() => {});
  console.log(JSON.stringify({ ok: false, results, error: String(error), problems }));
  process.exitCode = 1;
} finally {
  await context.close();
}
