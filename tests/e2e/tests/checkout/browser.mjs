// The checkout page as a patient and their wallet see it, in the installed headless
// Chromium (driven by puppeteer-core): read the facility and amount, decode the QR code
// from a screenshot (jsQR), let @solana/pay parse it and fetch the transaction it points
// at, sign it with a local keypair (the wallet), send it to the node, and watch the page go
// to "paid" without a reload. axe-core runs in the page; screenshots are kept.
import { mkdirSync, readFileSync, rmSync } from "node:fs";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { join } from "node:path";

import puppeteer from "puppeteer-core";
import { PNG } from "pngjs";
import jsQR from "jsqr";
import { fetchTransaction, parseURL } from "@solana/pay";
import { Connection, Keypair } from "@solana/web3.js";

const require = createRequire(import.meta.url);
const env = (name) => {
  const v = process.env[name];
  if (!v) throw new Error(`${name} is not set`);
  return v;
};
const pageUrl = env("CHECKOUT_PAGE");
// The public origin in the links → where this test reaches it (what DNS would do).
const [publicOrigin, reachOrigin] = env("CHECKOUT_REACH").split(" ");
const wallet = Keypair.fromSecretKey(Uint8Array.from(JSON.parse(env("CHECKOUT_WALLET"))));
const shots = env("CHECKOUT_SCREENSHOTS");
mkdirSync(shots, { recursive: true });

function decodeQR(png) {
  const img = PNG.sync.read(png);
  const data = new Uint8ClampedArray(img.data.buffer, img.data.byteOffset, img.data.length);
  const code = jsQR(data, img.width, img.height);
  return code ? code.data : null;
}

const axeSource = readFileSync(require.resolve("axe-core/axe.min.js"), "utf8");
async function axe(page) {
  await page.evaluate(axeSource);
  return page.evaluate(async () => {
    const r = await window.axe.run(document, { resultTypes: ["violations"] });
    return r.violations.map((v) => ({ id: v.id, impact: v.impact, nodes: v.nodes.length, help: v.help }));
  });
}

const profile = join(tmpdir(), `advancia-checkout-${process.pid}`);
const browser = await puppeteer.launch({
  executablePath: env("CHROMIUM"),
  headless: true,
  userDataDir: profile,
  timeout: 120000,
  protocolTimeout: 120000,
  args: ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run"],
});
const log = [];
try {
  const page = await browser.newPage();
  page.on("console", (m) => log.push(`${m.type()}: ${m.text()}`));
  page.on("pageerror", (e) => log.push(`pageerror: ${e.message}`));
  let navigations = 0;
  page.on("framenavigated", (f) => {
    if (f === page.mainFrame()) navigations += 1;
  });
  // Every CSP violation the page causes (our own scripts included) is recorded.
  await page.evaluateOnNewDocument(() => {
    window.__csp = [];
    document.addEventListener("securitypolicyviolation", (e) => {
      window.__csp.push(`${e.violatedDirective} ${e.blockedURI}`);
    });
  });
  await page.setViewport({ width: 420, height: 1000, deviceScaleFactor: 1 });
  const resp = await page.goto(pageUrl, { waitUntil: "load", timeout: 60000 });
  const csp = resp.headers()["content-security-policy"] ?? null;
  const facility = await page.$eval("#facility", (e) => e.textContent);
  const amount = await page.$eval("#amount", (e) => e.textContent);
  const walletHref = await page.$eval("#open-wallet", (e) => e.getAttribute("href"));
  const actionHref = await page.$eval("#open-action", (e) => e.getAttribute("href"));
  // Our script ran (it replaces the server's "N min" with a ticking m:ss).
  await page.waitForFunction(() => /^\d+:\d\d$/.test(document.getElementById("countdown").textContent), {
    timeout: 20000,
  });
  const countdown = await page.$eval("#countdown", (e) => e.textContent);
  // The live stream has sent its first state when the recorder sees the page settled.
  await page.evaluate(() => {
    window.__states = [document.body.dataset.state];
    window.__marker = "same document";
    new MutationObserver(() => {
      const s = document.body.dataset.state;
      if (window.__states[window.__states.length - 1] !== s) window.__states.push(s);
    }).observe(document.body, { attributes: true, attributeFilter: ["data-state"] });
  });

  const waiting = await page.screenshot({ path: join(shots, "checkout-waiting.png"), fullPage: true });
  const qr = decodeQR(waiting);
  const axeWaiting = await axe(page);

  // 320 px wide: nothing wider than the screen, and the QR code still reads.
  await page.setViewport({ width: 320, height: 900, deviceScaleFactor: 1 });
  const narrow = await page.evaluate(() => ({
    scrollWidth: document.documentElement.scrollWidth,
    qrWidth: document.querySelector("#qr svg").getBoundingClientRect().width,
  }));
  const small = await page.screenshot({ path: join(shots, "checkout-320px.png"), fullPage: true });
  const qrNarrow = decodeQR(small);
  const axeNarrow = await axe(page);
  await page.setViewport({ width: 420, height: 1000, deviceScaleFactor: 1 });

  // The wallet: Solana Pay's own parser takes the scanned payload, its fetchTransaction
  // POSTs the account to the link it names.
  const parsed = parseURL(qr);
  const link = parsed.link.toString();
  const reachable = link.startsWith(publicOrigin) ? reachOrigin + link.slice(publicOrigin.length) : link;
  const connection = new Connection(env("RPC_URL"), "confirmed");
  const tx = await fetchTransaction(connection, wallet.publicKey, reachable, { commitment: "confirmed" });
  tx.partialSign(wallet);
  const signature = await connection.sendRawTransaction(tx.serialize());

  await page.waitForFunction(() => document.body.dataset.state === "paid", { timeout: 120000 });
  const states = await page.evaluate(() => window.__states);
  const marker = await page.evaluate(() => window.__marker);
  const paidTitle = await page.$eval("#state-title", (e) => e.textContent);
  const paidDetail = await page.$eval("#state-detail", (e) => e.textContent);
  const payHidden = await page.$eval("#pay", (e) => e.hidden);
  await page.screenshot({ path: join(shots, "checkout-paid.png"), fullPage: true });
  const axePaid = await axe(page);
  const cspViolations = await page.evaluate(() => window.__csp);

  console.log(
    JSON.stringify({
      csp,
      facility,
      amount,
      walletHref,
      actionHref,
      countdown,
      qr,
      qrNarrow,
      link,
      narrow,
      signature,
      states,
      marker,
      navigations,
      paidTitle,
      paidDetail,
      payHidden,
      cspViolations,
      axe: { waiting: axeWaiting, narrow: axeNarrow, paid: axePaid },
      log,
    }),
  );
} catch (e) {
  console.error(String(e && e.stack ? e.stack : e));
  console.error(log.join("\n"));
  process.exitCode = 1;
} finally {
  await browser.close();
  rmSync(profile, { recursive: true, force: true });
}
