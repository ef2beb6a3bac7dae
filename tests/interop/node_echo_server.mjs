// Echo server built on Node's `ws` package, a peer for the ws-tests interop tests. It speaks
// the same line protocol as py_echo_server.py:
//
//   listening <port>
//   open <request path> <X-Client-Id header or ->
//   ping <payload hex>                           (a ping from the client arrived)
//   closed <code received> <reason received>
//
// Text is echoed as text and binary as binary, except the text commands
// `cmd:ping <payload>` (ping the client, then send "pong <payload>" when its pong arrives) and
// `cmd:close <code> <reason>` (start the closing handshake).
//
//   node node_echo_server.mjs [--port 0] [--lifetime 120]
//
// The process exits when its standard input closes (the test ended) or after --lifetime seconds.
import { WebSocketServer } from "ws";

function option(name, fallback) {
  const i = process.argv.indexOf(name);
  return i >= 0 && i + 1 < process.argv.length ? Number(process.argv[i + 1]) : fallback;
}

const say = (line) => process.stdout.write(line + "\n");

setTimeout(() => process.exit(3), option("--lifetime", 120) * 1000).unref();
process.stdin.on("end", () => process.exit(0));
process.stdin.resume();

const server = new WebSocketServer({
  host: "127.0.0.1",
  port: option("--port", 0),
  maxPayload: 64 * 1024 * 1024,
});

server.on("listening", () => say(`listening ${server.address().port}`));

server.on("connection", (ws, request) => {
  say(`open ${request.url} ${request.headers["x-client-id"] ?? "-"}`);
  let waitingPong = null;
  ws.on("ping", (data) => say(`ping ${data.toString("hex")}`));
  ws.on("pong", (data) => {
    if (waitingPong !== null && data.toString() === waitingPong) {
      ws.send(`pong ${waitingPong}`);
      waitingPong = null;
    }
  });
  ws.on("message", (data, isBinary) => {
    if (isBinary) {
      ws.send(data, { binary: true });
      return;
    }
    const text = data.toString("utf8");
    if (text.startsWith("cmd:ping ")) {
      waitingPong = text.slice("cmd:ping ".length);
      ws.ping(Buffer.from(waitingPong));
    } else if (text.startsWith("cmd:close ")) {
      const rest = text.slice("cmd:close ".length);
      const space = rest.indexOf(" ");
      const code = Number(space < 0 ? rest : rest.slice(0, space));
      ws.close(code, space < 0 ? "" : rest.slice(space + 1));
    } else {
      ws.send(text);
    }
  });
  ws.on("close", (code, reason) => say(`closed ${code} ${reason.toString("utf8")}`));
});
