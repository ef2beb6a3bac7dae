// permessage-deflate peer built on Node's `ws` (perMessageDeflate on, threshold 0 so that
// every message is compressed), for tests/tests/deflate_interop.rs. Same modes and lines as
// py_deflate_peer.py:
//
//   node node_deflate_peer.mjs server [--no-context-takeover]
//   node node_deflate_peer.mjs client URL [--no-context-takeover]
//
// --no-context-takeover asks for server_no_context_takeover and client_no_context_takeover.
// TLS: the server serves wss:// (over Node's https) with --cert and --key (PEM files); the
// client trusts the CA certificates of --ca.
// The process exits when its standard input closes or after 120 s.
import { readFileSync } from "node:fs";
import { createServer } from "node:https";
import { WebSocket, WebSocketServer } from "ws";

const say = (line) => process.stdout.write(line + "\n");
const [mode, url] = process.argv.slice(2);
const noContextTakeover = process.argv.includes("--no-context-takeover");
function option(name) {
  const i = process.argv.indexOf(name);
  return i >= 0 ? process.argv[i + 1] : undefined;
}
const [cert, key, ca] = ["--cert", "--key", "--ca"].map(option);
const perMessageDeflate = {
  threshold: 0,
  serverNoContextTakeover: noContextTakeover,
  clientNoContextTakeover: noContextTakeover,
};

setTimeout(() => process.exit(3), 120 * 1000).unref();
process.stdin.on("end", () => process.exit(0));
process.stdin.resume();

// The messages both peers send: small, large, repeated, empty, binary, incompressible.
function exchange() {
  const record = { user: "participant", text: "the same chat message, again and again" };
  const big = JSON.stringify(Array.from({ length: 200 }, (_, n) => ({ ...record, n }))).slice(0, 16 * 1024);
  let seed = 7;
  const random = Buffer.alloc(64 * 1024);
  for (let i = 0; i < random.length; i++) {
    seed = (seed * 1103515245 + 12345) >>> 0;
    random[i] = seed >>> 24;
  }
  return ["hello", big, big, "", Buffer.alloc(0), "żółć ünïcödé ✓ ".repeat(100), Buffer.alloc(1 << 20), random];
}

if (mode === "server") {
  let server;
  if (cert) {
    const https = createServer({ cert: readFileSync(cert), key: readFileSync(key) });
    server = new WebSocketServer({ server: https, perMessageDeflate, maxPayload: 0 });
    https.listen(0, "127.0.0.1", () => say(`listening ${https.address().port}`));
  } else {
    server = new WebSocketServer({ host: "127.0.0.1", port: 0, perMessageDeflate, maxPayload: 0 });
    server.on("listening", () => say(`listening ${server.address().port}`));
  }
  server.on("headers", (headers) => {
    const line = headers.find((h) => h.toLowerCase().startsWith("sec-websocket-extensions:"));
    say(`extensions ${line ? line.slice(line.indexOf(":") + 1).trim() : "-"}`);
  });
  server.on("connection", (ws) => {
    ws.on("message", (data, isBinary) => ws.send(data, { binary: isBinary }));
  });
} else {
  const ws = new WebSocket(url, { perMessageDeflate, maxPayload: 0, ca: ca ? readFileSync(ca) : undefined });
  const messages = exchange();
  let i = 0;
  ws.on("upgrade", (response) => say(`extensions ${response.headers["sec-websocket-extensions"] ?? "-"}`));
  ws.on("open", () => ws.send(messages[0]));
  ws.on("message", (data, isBinary) => {
    const sent = messages[i];
    const same = typeof sent === "string"
      ? !isBinary && data.toString("utf8") === sent
      : isBinary && Buffer.compare(data, sent) === 0;
    if (!same) {
      say(`mismatch ${i}`);
      process.exit(1);
    }
    i += 1;
    if (i === messages.length) {
      say(`ok ${messages.length}`);
      ws.close(1000);
    } else {
      ws.send(messages[i]);
    }
  });
  ws.on("close", () => process.exit(0));
  ws.on("error", (e) => {
    say(`error ${e.message}`);
    process.exit(1);
  });
}
