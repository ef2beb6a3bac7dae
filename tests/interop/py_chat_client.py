"""Chat participant built on Python `websockets`, a peer for the ws-tests interop tests.

    python py_chat_client.py ws://127.0.0.1:PORT/chat?id=py [--client-id NAME]

--client-id sends the name in an `X-Client-Id` header. Commands are read from standard input,
one per line:

    text <message>       send a text message
    binary <hex>         send a binary message
    close <code> <reason>

and events are printed on stdout, one per line:

    open
    recv text <message as a JSON string>
    recv binary <hex>
    closed <code received> <reason received>

The process exits after the connection closed and stdin ended, or after --lifetime seconds.
"""

import argparse
import json
import os
import sys
import threading

from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

LOCK = threading.Lock()


def say(line):
    with LOCK:
        sys.stdout.write(line + "\n")
        sys.stdout.flush()


def receive(ws, done):
    try:
        for message in ws:
            if isinstance(message, str):
                say("recv text " + json.dumps(message))
            else:
                say("recv binary " + message.hex())
    except ConnectionClosed:
        pass
    code = ws.close_code if ws.close_code is not None else 1006
    say("closed %d %s" % (code, ws.close_reason or ""))
    done.set()


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("url")
    parser.add_argument("--client-id")
    parser.add_argument("--lifetime", type=float, default=120.0)
    args = parser.parse_args()
    timer = threading.Timer(args.lifetime, lambda: os._exit(3))
    timer.daemon = True
    timer.start()
    headers = {"X-Client-Id": args.client_id} if args.client_id else None
    ws = connect(args.url, additional_headers=headers, open_timeout=10)
    say("open")
    done = threading.Event()
    threading.Thread(target=receive, args=(ws, done), daemon=True).start()
    for line in sys.stdin:
        command, _, rest = line.rstrip("\n").partition(" ")
        try:
            if command == "text":
                ws.send(rest)
            elif command == "binary":
                ws.send(bytes.fromhex(rest))
            elif command == "close":
                code, _, reason = rest.partition(" ")
                ws.close(int(code), reason)
            else:
                say("error unknown command " + json.dumps(command))
        except ConnectionClosed:
            break
    ws.close()
    done.wait(10)
    os._exit(0)


if __name__ == "__main__":
    main()
