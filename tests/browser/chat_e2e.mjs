// Drives Debian's headless Chromium through playwright-core for the browser end-to-end test
// (tests/tests/browser.rs). It opens one chat page per name, loaded from the chat server under
// test, and speaks a line protocol with the Rust test:
//
//   node chat_e2e.mjs http://127.0.0.1:PORT ann cat
//
// stdout: `ready` once every page shows "connected" (pages open one after another, in the
//         order given), then the answers below; `error <JSON message>` on failure (exit 1).
// stdin (commands run one at a time, in order):
//         `type <name> <text>`  types <text> into that page's send box; answers `typed <name>`
//         `submit <name> click|enter`  submits that page's form, by clicking its Send button
//                               or by pressing Enter in the send box; answers `sent <name>`
//                               once the box was cleared (the page sent it)
//         `collect <n>`         waits until every page shows at least <n> messages (then a
//                               little longer, so duplicates would show), prints per page
//                                 status <name> <status text as JSON> <status element class>
//                                 markup <name> <elements in #log other than plain .msg rows>
//                                        <img elements in the page> <dialogs opened>
//                                 row <name> <row text as JSON>      (one per .msg row)
//                               then `done`, closes the browser and exits 0.
// The browser is closed when stdin ends, on failure, and after a bounded lifetime.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { chromium } from "playwright-core";

const LIFETIME_MS = 120_000;
const STEP_MS = 20_000;
const say = (line) => process.stdout.write(line + "\n");

const [base, ...names] = process.argv.slice(2);
if (!base || names.length === 0) {
  say(`error ${JSON.stringify("usage: node chat_e2e.mjs BASE_URL NAME...")}`);
  process.exit(2);
}

const profile = mkdtempSync(join(tmpdir(), "ws-tests-chromium-"));
let context = null;
let finishing = false;

async function finish(code) {
  if (finishing) return;
  finishing = true;
  try {
    if (context) await context.close();
  } catch (e) {
    process.stderr.write(`closing the browser failed: ${e}\n`);
  }
  rmSync(profile, { recursive: true, force: true });
  process.exit(code);
}

function fail(error) {
  say(`error ${JSON.stringify(String(error && error.stack ? error.stack : error))}`);
  finish(1);
}

setTimeout(() => {
  say(`error ${JSON.stringify(`lifetime of ${LIFETIME_MS} ms exceeded`)}`);
  finish(3);
}, LIFETIME_MS).unref();

const pages = new Map(); // name -> { page, dialogs }

async function openPage(name) {
  const page = await context.newPage();
  const entry = { page, dialogs: [] };
  page.on("dialog", (dialog) => {
    entry.dialogs.push(dialog.message());
    dialog.dismiss().catch(() => {});
  });
  page.on("pageerror", (e) => process.stderr.write(`[${name}] page error: ${e}\n`));
  page.on("console", (m) => process.stderr.write(`[${name}] console ${m.type()}: ${m.text()}\n`));
  await page.goto(`${base}/?name=${encodeURIComponent(name)}`, { timeout: STEP_MS });
  await page.waitForFunction(
    () => document.getElementById("status").textContent === "connected",
    null,
    { timeout: STEP_MS },
  );
  pages.set(name, entry);
}

function pageNamed(name) {
  const entry = pages.get(name);
  if (!entry) throw new Error(`no page named ${name}`);
  return entry.page;
}

// A tab in the background gets no animation frames, which Playwright's actionability checks
// wait for: each action brings its page to the front first (commands run one at a time).
async function type(name, text) {
  const page = pageNamed(name);
  await page.bringToFront();
  await page.fill("#text", text, { timeout: STEP_MS });
  say(`typed ${name}`);
}

async function submit(name, how) {
  const page = pageNamed(name);
  if (how === "click") {
    await page.bringToFront();
    await page.click("#send", { timeout: STEP_MS });
  } else if (how === "enter") {
    await page.press("#text", "Enter", { timeout: STEP_MS });
  } else {
    throw new Error(`submit ${name}: unknown way ${how}`);
  }
  await page.waitForFunction(() => document.getElementById("text").value === "", null, {
    timeout: STEP_MS,
  });
  say(`sent ${name}`);
}

async function collect(count) {
  for (const { page } of pages.values()) {
    await page.waitForFunction((n) => document.querySelectorAll("#log .msg").length >= n, count, {
      timeout: STEP_MS,
    });
  }
  // Give a duplicate or a late extra message the chance to show up before reading.
  await new Promise((resolve) => setTimeout(resolve, 500));
  for (const [name, { page, dialogs }] of pages) {
    const view = await page.evaluate(() => {
      const status = document.getElementById("status");
      const log = document.getElementById("log");
      const extra = [...log.querySelectorAll("*")].filter(
        (el) => !(el.tagName === "DIV" && el.className === "msg" && el.children.length === 0),
      ).length;
      return {
        status: status.textContent,
        statusClass: status.className,
        extra,
        imgs: document.querySelectorAll("img").length,
        rows: [...log.querySelectorAll(".msg")].map((row) => row.textContent),
      };
    });
    say(`status ${name} ${JSON.stringify(view.status)} ${view.statusClass}`);
    say(`markup ${name} ${view.extra} ${view.imgs} ${dialogs.length}`);
    for (const row of view.rows) say(`row ${name} ${JSON.stringify(row)}`);
  }
  say("done");
  await finish(0);
}

async function main() {
  context = await chromium.launchPersistentContext(profile, {
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
    headless: true,
    timeout: STEP_MS,
    args: [
      "--headless",
      "--no-sandbox",
      "--disable-gpu",
      "--disable-background-networking",
      "--disable-quic",
      "--no-first-run",
      "--disable-component-update",
      "--disable-sync",
    ],
  });
  for (const name of names) await openPage(name);
  say("ready");

  // Commands run one after another, in the order received.
  let queue = Promise.resolve();
  const input = createInterface({ input: process.stdin });
  input.on("line", (line) => {
    const [command, name, ...rest] = line.split(" ");
    if (command === "type") queue = queue.then(() => type(name, rest.join(" ")));
    else if (command === "submit") queue = queue.then(() => submit(name, rest[0]));
    else if (command === "collect") queue = queue.then(() => collect(Number(name)));
    else queue = queue.then(() => Promise.reject(new Error(`unknown command ${line}`)));
    queue = queue.catch(fail);
  });
  input.on("close", () => finish(0));
}

main().catch(fail);
