// Chromium's own WebSocket and permessage-deflate, for tests/tests/browser.rs. Loads the chat
// page from the chat server under test (so that the page may open WebSockets to loopback),
// then, inside the page, opens a second WebSocket to the chat, sends a small and a large text
// message and waits for the server's broadcast of each back to it.
//
//   node deflate_probe.mjs http://127.0.0.1:PORT
//   node deflate_probe.mjs https://localhost:PORT     (wss://; the CA trusted through $HOME's NSS
//                                                       database, see tests/tests/browser.rs)
//
// stdout: `extensions <ws.extensions as JSON>`, then `echo <length> ok` per message (the
//         length of what was sent), then `done`; `error <JSON message>` on failure (exit 1).
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { chromium } from "playwright-core";

const STEP_MS = 20_000;
const say = (line) => process.stdout.write(line + "\n");
const base = process.argv[2];
const profile = mkdtempSync(join(tmpdir(), "ws-tests-chromium-"));
let context = null;

async function finish(code) {
  try {
    if (context) await context.close();
  } catch (e) {
    process.stderr.write(`closing the browser failed: ${e}\n`);
  }
  rmSync(profile, { recursive: true, force: true });
  process.exit(code);
}

setTimeout(() => {
  say(`error ${JSON.stringify("lifetime of 90 s exceeded")}`);
  finish(3);
}, 90_000).unref();
process.stdin.on("end", () => finish(0));
process.stdin.resume();

async function main() {
  context = await chromium.launchPersistentContext(profile, {
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
    headless: true,
    timeout: STEP_MS,
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
      "--disable-quic", "--no-first-run", "--disable-component-update", "--disable-sync"],
  });
  const page = await context.newPage();
  page.on("console", (m) => process.stderr.write(`console ${m.type()}: ${m.text()}\n`));
  await page.goto(`${base}/?name=page`, { timeout: STEP_MS });
  await page.waitForFunction(() => document.getElementById("status").textContent === "connected",
    null, { timeout: STEP_MS });
  const result = await page.evaluate(async () => {
    const scheme = location.protocol === "https:" ? "wss" : "ws";
    const ws = new WebSocket(`${scheme}://${location.host}/chat?id=probe`);
    // The chat server broadcasts binary messages (the tutorial's send()).
    ws.binaryType = "arraybuffer";
    const decoder = new TextDecoder();
    const opened = new Promise((resolve, reject) => {
      ws.onopen = resolve;
      ws.onerror = () => reject(new Error("websocket error"));
    });
    await opened;
    const record = '{"user":"participant","text":"the same chat message, again and again"},';
    const messages = ["hi", "[" + record.repeat(3000) + "{}]"];
    const echoes = [];
    for (const message of messages) {
      const echo = new Promise((resolve) => {
        ws.onmessage = (e) => {
          const text = typeof e.data === "string" ? e.data : decoder.decode(e.data);
          if (text === `probe: ${message}`) resolve(message.length);
        };
      });
      ws.send(message);
      echoes.push(await echo);
    }
    const extensions = ws.extensions;
    ws.close(1000);
    return { extensions, echoes };
  });
  say(`extensions ${JSON.stringify(result.extensions)}`);
  for (const length of result.echoes) say(`echo ${length} ok`);
  say("done");
  await finish(0);
}

main().catch((e) => {
  say(`error ${JSON.stringify(String(e && e.stack ? e.stack : e))}`);
  finish(1);
});
