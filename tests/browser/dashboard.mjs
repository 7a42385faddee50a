// Headless Chromium on shoal's dashboard: one step per run, its result as
// one JSON line. tests/it/dashboard.rs drives it.
//
// usage: node dashboard.mjs URL USER PASSWORD STEP [ARGS…]
//   auth              the page's status without credentials, and with them
//   live              the request-rate figure and the chart, 3 s apart
//   drain NODE POOL [ACTION [all]]  press ACTION's button (draining) on NODE in POOL, confirm
//                     (in every pool with "all"), wait for the page to say so
//   down NODE         wait for NODE's row to turn red with a reason
//   history           the charts at the page's first drawing (from shoal's history)
//   purge-one KIND T  purge the URL (KIND url) or prefix (KIND prefix) T from the form
//   purge             the cache's objects on the page, then purge them from it
//   config VS         open the configuration view and follow VS → its pool → its monitor
//   watch SECONDS     keep the page open and refreshing (perf/compare --dashboard)
//   shots DIR         screenshots of the overview, the pools and the configuration, 1280x800, into DIR
import { chromium } from "playwright-core";

const [url, user, password, step, ...args] = process.argv.slice(2);
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"],
});
const out = (o) => console.log(JSON.stringify(o));
try {
  const context = await browser.newContext({ httpCredentials: { username: user, password }, viewport: { width: 1280, height: 800 } });
  const page = await context.newPage();
  if (step === "auth") {
    // Without credentials: Chromium cannot load the page (it has none
    // to answer the 401's challenge with), and the status is 401.
    const anon = await browser.newContext();
    let loaded = true;
    try {
      await (await anon.newPage()).goto(url);
    } catch (e) {
      loaded = !String(e).includes("ERR_INVALID_AUTH_CREDENTIALS");
    }
    const refused = await anon.request.get(url);
    const ok = await page.goto(url);
    await page.waitForFunction(() => document.getElementById("generation").textContent.includes("generation"));
    out({ loaded_without: loaded, without: refused.status(), with: ok.status(), title: await page.title() });
  } else if (step === "live") {
    await page.goto(url);
    const read = async () => page.evaluate(() => ({
      rate: parseFloat(document.getElementById("rate").textContent.replace("k", "e3")) || 0,
      points: Number(document.getElementById("chart").dataset.points || 0),
      line: (document.querySelector("#chart polyline") || { getAttribute: () => "" }).getAttribute("points"),
    }));
    await page.waitForFunction(() => Number(document.getElementById("chart").dataset.points || 0) >= 2);
    const a = await read();
    await page.waitForTimeout(3000);
    const b = await read();
    out({ first: a, second: b });
  } else if (step === "drain") {
    // ACTION (draining, disabled, active) NODE in POOL, or with "all" in
    // every pool that has it: from the keyboard, then the confirmation.
    const [node, pool, action = "draining", where = "one"] = args;
    await page.goto(url);
    const button = page.locator(`#pool-${pool} tr[data-node="${node}"] button[data-action="${action}"]`);
    await button.waitFor();
    await button.focus();
    await page.keyboard.press("Enter");
    const offered = await page.locator("#confirm-choice").isVisible();
    if (where === "all") await page.locator("#confirm-all").check();
    await page.locator("#confirm-ok").click();
    await page.waitForFunction(([n, a, w, p]) => {
      const cells = [...document.querySelectorAll(`${w === "all" ? "" : `#pool-${p} `}tr[data-node="${n}"] td.state`)];
      return cells.length && cells.every((c) => c.textContent === a);
    }, [node, action, where, pool]);
    out({ node, action, offered_all: offered, rows: await page.locator(`tr[data-node="${node}"] td.state`).allTextContents() });
  } else if (step === "down") {
    const [node] = args;
    await page.goto(url);
    const row = await page.waitForFunction((n) => {
      const r = document.querySelector(`tr[data-node="${n}"]`);
      const reason = r && r.querySelector("td.reason").textContent;
      return r && r.classList.contains("down") && reason ? { reason, color: getComputedStyle(r.querySelector("td")).backgroundColor } : null;
    }, node, { timeout: 15000 });
    out(await row.jsonValue());
  } else if (step === "history") {
    // A page opened now: how many samples its first drawing has, and
    // how long after loading it drew them (too soon to have polled them).
    const t0 = Date.now();
    await page.goto(url);
    await page.waitForFunction(() => Number(document.getElementById("chart").dataset.points || 0) > 0);
    const first = await page.evaluate(() => ({
      points: Number(document.getElementById("chart").dataset.points),
      charts: [...document.querySelectorAll("svg[id^=chart]")].filter((s) => s.querySelector("polyline")).length,
      rate: document.getElementById("rate").textContent,
    }));
    out({ ...first, ms: Date.now() - t0 });
  } else if (step === "purge-one") {
    const [kind, target] = args;
    await page.goto(url);
    await page.locator("#purge-kind").selectOption(kind);
    await page.locator("#purge-target").fill(target);
    await page.locator("#purge-target").press("Enter");
    await page.locator("#confirm-ok").click();
    await page.waitForFunction(() => /^purge/.test(document.getElementById("purged").textContent));
    out({ said: await page.locator("#purged").textContent() });
  } else if (step === "config") {
    const [vs] = args;
    await page.goto(url);
    await page.locator("#config-view > summary").click();
    const vsBox = page.locator(`#cfg-virtual_servers-${vs}`);
    await vsBox.waitFor();
    // virtual server → pool (the link in its "pool" row) → monitor.
    const poolLink = vsBox.locator("tr", { hasText: "pool" }).locator("a").first();
    const pool = await poolLink.textContent();
    await poolLink.click();
    const poolBox = page.locator(`#cfg-pools-${pool}`);
    const usedBy = await poolBox.locator("h4").textContent();
    const monLink = poolBox.locator("tr", { hasText: "monitors" }).locator("a").first();
    const monitor = await monLink.textContent();
    await monLink.click();
    const hash = await page.evaluate(() => location.hash);
    const monBox = await page.locator(`#cfg-monitors-${monitor}`).textContent();
    const hidden = await page.locator(".object td", { hasText: "••••" }).count();
    out({ pool, pool_heading: usedBy, monitor, hash, monitor_text: monBox, hidden });
  } else if (step === "watch") {
    const [seconds] = args;
    await page.goto(url);
    let polls = 0;
    page.on("response", (r) => { if (r.url().includes("/status/history")) polls++; });
    await page.waitForTimeout(Number(seconds) * 1000);
    out({ polls });
  } else if (step === "purge") {
    // The cache's objects as the page shows them, then purge from the page.
    await page.goto(url);
    await page.waitForFunction(() => Number((document.getElementById("cache-objects") || {}).textContent) > 0);
    const before = Number(await page.locator("#cache-objects").textContent());
    const slm = await page.locator('#classes tr[data-class] td.slm-ok, #classes tr[data-class] td.slm-warning, #classes tr[data-class] td.slm-serious').count();
    await page.locator("#purge").click();
    await page.locator("#confirm-ok").click();
    await page.waitForFunction(() => document.getElementById("purged").textContent.startsWith("purged"));
    await page.waitForFunction(() => Number(document.getElementById("cache-objects").textContent) === 0);
    out({ before, said: await page.locator("#purged").textContent(), slm_rows: slm });
  } else if (step === "shots") {
    const [dir] = args;
    await page.goto(url);
    await page.waitForFunction(() => Number(document.getElementById("chart").dataset.points || 0) >= 3);
    await page.screenshot({ path: `${dir}/dashboard-overview.png` });
    await page.locator("#pools").screenshot({ path: `${dir}/dashboard-pool.png` });
    await page.locator("#config-view > summary").click();
    await page.locator("#config .object").first().waitFor();
    await page.locator("#config-view").screenshot({ path: `${dir}/dashboard-config.png` });
    out({ shots: dir });
  }
} finally {
  await browser.close();
}
