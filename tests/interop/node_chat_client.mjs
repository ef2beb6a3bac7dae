// Chat participant built on Node's `ws` package, a peer for the ws-tests interop tests. It
// speaks the same line protocol as py_chat_client.py:
//
//   node node_chat_client.mjs ws://127.0.0.1:PORT/chat [--client-id NAME] [--lifetime 120]
//
// stdin:  text <message> | binary <hex> | close <code> <reason>
// stdout: open | recv text <JSON string> | recv binary <hex> | closed <code> <reason>
//
// --client-id sends the name in an `X-Client-Id` header.
import WebSocket from "ws";
import { createInterface } from "node:readline";

const say = (line) => process.stdout.write(line + "\n");
const args = process.argv.slice(2);
const url = args[0];
const idAt = args.indexOf("--client-id");
const lifeAt = args.indexOf("--lifetime");
const lifetime = lifeAt >= 0 ? Number(args[lifeAt + 1]) : 120;
setTimeout(() => process.exit(3), lifetime * 1000).unref();

const headers = idAt >= 0 ? { "X-Client-Id": args[idAt + 1] } : {};
const ws = new WebSocket(url, { headers, handshakeTimeout: 10000 });
let closed = false;
let inputEnded = false;

ws.on("open", () => {
  say("open");
  const input = createInterface({ input: process.stdin });
  input.on("line", (line) => {
    const space = line.indexOf(" ");
    const command = space < 0 ? line : line.slice(0, space);
    const rest = space < 0 ? "" : line.slice(space + 1);
    if (command === "text") {
      ws.send(rest);
    } else if (command === "binary") {
      ws.send(Buffer.from(rest, "hex"), { binary: true });
    } else if (command === "close") {
      const s = rest.indexOf(" ");
      ws.close(Number(s < 0 ? rest : rest.slice(0, s)), s < 0 ? "" : rest.slice(s + 1));
    } else {
      say(`error unknown command ${JSON.stringify(command)}`);
    }
  });
  input.on("close", () => {
    inputEnded = true;
    if (closed) process.exit(0);
    ws.close();
  });
});
ws.on("message", (data, isBinary) => {
  if (isBinary) say(`recv binary ${data.toString("hex")}`);
  else say(`recv text ${JSON.stringify(data.toString("utf8"))}`);
});
ws.on("close", (code, reason) => {
  closed = true;
  say(`closed ${code} ${reason.toString("utf8")}`);
  if (inputEnded) process.exit(0);
});
ws.on("error", (e) => {
  say(`error ${JSON.stringify(String(e.message))}`);
  process.exit(1);
});
