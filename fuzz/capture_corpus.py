#!/usr/bin/env python3
"""Captures real upgrade requests and responses into the handshake fuzz corpora.

Requests come from Chromium (a page served by this script opens a WebSocket), Python
`websockets` and tungstenite (a client binary given with --tungstenite); responses come from
Python `websockets` and Node `ws` servers (tests/interop/*). Each response's
Sec-WebSocket-Accept value is replaced by `{ACCEPT}`, which the handshake_response target
swaps for the right key. Run from the repository root after `bash .ci/run peers`:

    .venv/bin/python fuzz/capture_corpus.py [--tungstenite PATH]
"""
import argparse
import base64
import hashlib
import os
import re
import socket
import subprocess
import sys
import threading

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
REQ_DIR = os.path.join(ROOT, "fuzz", "corpus", "handshake_request")
RESP_DIR = os.path.join(ROOT, "fuzz", "corpus", "handshake_response")
GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
PAGE = b"<!doctype html><script>new WebSocket('ws://' + location.host + '/chat');</script>"


def read_head(conn):
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(4096)
        if not chunk:
            break
        data += chunk
    return data


def capture_requests(name, run_client):
    """Serves one page (for browsers) and records the first WebSocket upgrade request."""
    server = socket.socket()
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    server.settimeout(20)
    port = server.getsockname()[1]
    client = threading.Thread(target=run_client, args=(port,), daemon=True)
    client.start()
    try:
        while True:
            conn, _ = server.accept()
            head = read_head(conn)
            if b"upgrade: websocket" not in head.lower():
                body = PAGE
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: %d\r\n"
                             b"Connection: close\r\n\r\n%s" % (len(body), body))
                conn.close()
                continue
            key = re.search(rb"(?i)sec-websocket-key: *([^\r]+)", head).group(1).strip()
            accept = base64.b64encode(hashlib.sha1(key + GUID.encode()).digest())
            conn.sendall(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                         b"Connection: Upgrade\r\nSec-WebSocket-Accept: " + accept + b"\r\n\r\n")
            conn.close()
            with open(os.path.join(REQ_DIR, name), "wb") as f:
                f.write(head)
            print("captured request from", name)
            return
    except socket.timeout:
        print("no request from", name, file=sys.stderr)
    finally:
        server.close()


def capture_response(name, command):
    """Starts an echo server that prints its port, sends one upgrade request, keeps the head."""
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stdin=subprocess.PIPE, text=True, cwd=ROOT)
    try:
        line = proc.stdout.readline()
        port = int(re.search(r"(\d+)", line).group(1))
        key = base64.b64encode(os.urandom(16))
        sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        sock.sendall(b"GET /chat HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nUpgrade: websocket\r\n"
                     b"Connection: Upgrade\r\nSec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n\r\n"
                     % (port, key))
        head = read_head(sock)
        sock.close()
        head = re.sub(rb"(?i)(sec-websocket-accept: *)[^\r]+", rb"\1{ACCEPT}", head)
        with open(os.path.join(RESP_DIR, name), "wb") as f:
            f.write(head)
        print("captured response from", name)
    finally:
        proc.kill()


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--tungstenite", help="a binary that connects to the ws:// URL given as argument")
    args = parser.parse_args()
    os.makedirs(REQ_DIR, exist_ok=True)
    os.makedirs(RESP_DIR, exist_ok=True)

    def chromium(port):
        subprocess.run(["/usr/bin/chromium", "--headless", "--no-sandbox", "--disable-gpu",
                        "--disable-background-networking", "--disable-quic", "--no-first-run",
                        "--disable-component-update", "--disable-sync", "--user-data-dir=/tmp/capture-profile",
                        "--virtual-time-budget=3000", "--dump-dom", "http://127.0.0.1:%d/" % port],
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=30)

    def python_client(port):
        from websockets.sync.client import connect
        try:
            with connect("ws://127.0.0.1:%d/chat" % port, open_timeout=5):
                pass
        except Exception:
            pass

    capture_requests("chromium", chromium)
    capture_requests("python_websockets", python_client)
    if args.tungstenite:
        capture_requests("tungstenite", lambda port: subprocess.run(
            [args.tungstenite, "ws://127.0.0.1:%d/chat" % port], timeout=20))
    capture_response("python_websockets", [os.path.join(ROOT, ".venv", "bin", "python"),
                                           "tests/interop/py_echo_server.py"])
    capture_response("node_ws", ["node", "tests/interop/node_echo_server.mjs"])


if __name__ == "__main__":
    main()
