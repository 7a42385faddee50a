// Headless Chromium fetches each URL given on the command line from a page
// of the same origin and prints one JSON line per URL: the status, the
// Content-Encoding the browser saw, the SHA-256 of the body as the page
// got it (decoded by the browser), and the transfer and decoded sizes
// from Resource Timing. tests/it/compression.rs runs it.
//
// usage: node fetch.mjs URL...
import { chromium } from "playwright-core";

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"],
});
try {
  const page = await browser.newPage();
  for (const url of process.argv.slice(2)) {
    const u = new URL(url);
    // A page of the same origin (any answer will do), so the fetch below
    // sees every response header.
    await page.goto(`${u.origin}/?size=10&type=text/plain`);
    const r = await page.evaluate(async (target) => {
      const resp = await fetch(target, { cache: "no-store" });
      const body = await resp.arrayBuffer();
      const digest = await crypto.subtle.digest("SHA-256", body);
      const hex = [...new Uint8Array(digest)].map((b) => b.toString(16).padStart(2, "0")).join("");
      const timing = performance.getEntriesByName(new URL(target, location.href).href).pop() || {};
      return {
        status: resp.status,
        encoding: resp.headers.get("content-encoding"),
        sha256: hex,
        length: body.byteLength,
        encodedBodySize: timing.encodedBodySize,
        decodedBodySize: timing.decodedBodySize,
      };
    }, url);
    console.log(JSON.stringify({ url, ...r }));
  }
} finally {
  await browser.close();
}
