// Headless Chromium loads a page over HTTPS and prints one JSON line: the
// page's protocol and, for its subresources (Resource Timing), how many
// loaded, by protocol, and the SHA-256 of each URL given after the page as
// fetched by the page. tests/it/http2.rs runs it against shoal with HTTP/2
// (the certificate is the test's own, hence --ignore-certificate-errors).
//
// usage: node subresources.mjs PAGE_URL [URL...]
import { chromium } from "playwright-core";

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--ignore-certificate-errors"],
});
try {
  const page = await browser.newPage();
  const [pageUrl, ...urls] = process.argv.slice(2);
  await page.goto(pageUrl, { waitUntil: "load" });
  const r = await page.evaluate(async (targets) => {
    const nav = performance.getEntriesByType("navigation")[0];
    const res = performance.getEntriesByType("resource");
    const protocols = {};
    for (const e of res) protocols[e.nextHopProtocol] = (protocols[e.nextHopProtocol] || 0) + 1;
    const bodies = [];
    for (const t of targets) {
      const b = await (await fetch(t, { cache: "no-store" })).arrayBuffer();
      const d = await crypto.subtle.digest("SHA-256", b);
      bodies.push([...new Uint8Array(d)].map((x) => x.toString(16).padStart(2, "0")).join(""));
    }
    return {
      page: nav.nextHopProtocol,
      resources: res.length,
      protocols,
      loaded: res.filter((e) => e.responseStatus === 200 || e.transferSize > 0).length,
      sha256: bodies,
    };
  }, urls);
  console.log(JSON.stringify(r));
} finally {
  await browser.close();
}
