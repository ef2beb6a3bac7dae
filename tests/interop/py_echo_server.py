"""Echo server built on Python `websockets`, a peer for the ws-tests interop tests.

Listens on 127.0.0.1 (port from --port, 0 = any free port) and prints one line per event on
stdout, which the Rust test reads:

    listening <port>
    open <request path> <X-Client-Id header or ->
    closed <code received> <reason received>      (code 1005 / 1006 when there was none)

Every text message is echoed as text and every binary message as binary, except two commands
(text messages):

    cmd:ping <payload>          the server pings with <payload>; when the pong arrives it sends
                                the text "pong <payload>" (so the client's automatic pong is seen)
    cmd:close <code> <reason>   the server starts the closing handshake with that code and reason

The process exits when its standard input closes (the test ended) or after --lifetime seconds.
"""

import argparse
import os
import sys
import threading

from websockets.exceptions import ConnectionClosed
from websockets.sync.server import serve


def say(line):
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def handle(ws):
    say("open %s %s" % (ws.request.path, ws.request.headers.get("X-Client-Id", "-")))
    try:
        for message in ws:
            if isinstance(message, str) and message.startswith("cmd:ping "):
                payload = message[len("cmd:ping "):]
                pong = ws.ping(payload.encode())
                if pong.wait(10):
                    ws.send("pong " + payload)
                else:
                    ws.send("no pong")
            elif isinstance(message, str) and message.startswith("cmd:close "):
                code, _, reason = message[len("cmd:close "):].partition(" ")
                ws.close(int(code), reason)
            else:
                ws.send(message)
    except ConnectionClosed:
        pass
    code = ws.close_code if ws.close_code is not None else 1006
    say("closed %d %s" % (code, ws.close_reason or ""))


def exit_when_stdin_closes():
    sys.stdin.read()
    os._exit(0)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--lifetime", type=float, default=120.0)
    args = parser.parse_args()
    threading.Thread(target=exit_when_stdin_closes, daemon=True).start()
    timer = threading.Timer(args.lifetime, lambda: os._exit(3))
    timer.daemon = True
    timer.start()
    # max_size=None: the 1 MiB round trip must not hit websockets' own default limit (1 MiB).
    with serve(handle, "127.0.0.1", args.port, max_size=None) as server:
        say("listening %d" % server.socket.getsockname()[1])
        server.serve_forever()


if __name__ == "__main__":
    main()
