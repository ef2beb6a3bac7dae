"""permessage-deflate peer built on Python `websockets`, for tests/tests/deflate_interop.rs.

    py_deflate_peer.py server [--no-context-takeover]
        Echo server on 127.0.0.1 (any free port) with compression. Prints `listening <port>`,
        then for each connection `extensions <Sec-WebSocket-Extensions of its response or ->`.
    py_deflate_peer.py client URL [--no-context-takeover]
        Connects with compression, prints `extensions <response header or ->`, sends every
        message of exchange() and checks each echo, then prints `ok <count>` (or `mismatch <i>`).

--no-context-takeover asks for server_no_context_takeover and client_no_context_takeover.
--no-compression turns compression off. TLS: the server serves wss:// with --cert and --key
(PEM files); the client trusts the CA certificates of --ca for a wss:// URL.

    py_deflate_peer.py flood URL [--ca PEM] [--count N] [--size BYTES] [--no-compression]
        Sends N binary messages of BYTES from a thread while not reading for 2 s (its own
        receive queue fills, then the server stops reading, then TCP flow control blocks the
        sender), then reads every echo and prints `flood ok <count>` when each came back
        intact and in order (or `flood mismatch <i>`).

    py_deflate_peer.py old-tls URL --ca PEM
        Tries a TLS 1.1 (at most) handshake with the server of URL and prints `refused <reason>`
        or `connected` (OpenSSL's security level lowered so that it offers TLS 1.0 and 1.1).

The process exits when its standard input closes or after --lifetime seconds.
"""

import argparse
import json
import os
import random
import socket
import ssl
import sys
import threading
from urllib.parse import urlparse

from websockets.extensions.permessage_deflate import (
    ClientPerMessageDeflateFactory,
    ServerPerMessageDeflateFactory,
)
from websockets.sync.client import connect
from websockets.sync.server import serve


def say(line):
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def exchange():
    """The messages both peers send: small, large, repeated, empty, binary, incompressible."""
    record = {"user": "participant", "text": "the same chat message, again and again", "n": 0}
    big = json.dumps([dict(record, n=i) for i in range(200)])[: 16 * 1024]
    rng = random.Random(7)
    return [
        "hello",
        big,
        big,
        "",
        b"",
        "żółć ünïcödé ✓ " * 100,
        bytes(1 << 20),
        bytes(rng.getrandbits(8) for _ in range(64 * 1024)),
    ]


# What `compression="deflate"`, the library's default, uses: 12-bit windows, memLevel 5.
DEFAULTS = {"server_max_window_bits": 12, "compress_settings": {"memLevel": 5}}


def server_ssl(cert, key):
    if not cert:
        return None
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    return context


def client_ssl(ca):
    if not ca:
        return None
    return ssl.create_default_context(cafile=ca)


def run_server(no_context_takeover, compression, tls):
    factory = ServerPerMessageDeflateFactory(
        server_no_context_takeover=no_context_takeover,
        client_no_context_takeover=no_context_takeover,
        client_max_window_bits=12,
        **DEFAULTS,
    )

    def handle(ws):
        say("extensions %s" % ws.response.headers.get("Sec-WebSocket-Extensions", "-"))
        for message in ws:
            ws.send(message)

    with serve(
        handle,
        "127.0.0.1",
        0,
        compression=None,
        extensions=[factory] if compression else [],
        max_size=None,
        ssl=tls,
    ) as server:
        say("listening %d" % server.socket.getsockname()[1])
        server.serve_forever()


def run_client(url, no_context_takeover, compression, tls):
    factory = ClientPerMessageDeflateFactory(
        server_no_context_takeover=no_context_takeover,
        client_no_context_takeover=no_context_takeover,
        client_max_window_bits=True,
        **DEFAULTS,
    )
    extensions = [factory] if compression else []
    with connect(url, compression=None, extensions=extensions, max_size=None, ssl=tls) as ws:
        say("extensions %s" % ws.response.headers.get("Sec-WebSocket-Extensions", "-"))
        messages = exchange()
        for i, message in enumerate(messages):
            ws.send(message)
            if ws.recv(timeout=10) != message:
                say("mismatch %d" % i)
                return
        say("ok %d" % len(messages))


def try_old_tls(url, ca):
    """A handshake offering TLS 1.0 and 1.1 only."""
    target = urlparse(url)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.load_verify_locations(ca)
    context.set_ciphers("DEFAULT:@SECLEVEL=0")
    context.minimum_version = ssl.TLSVersion.TLSv1
    context.maximum_version = ssl.TLSVersion.TLSv1_1
    with socket.create_connection((target.hostname, target.port), timeout=10) as raw:
        try:
            with context.wrap_socket(raw, server_hostname=target.hostname):
                say("connected")
        except (ssl.SSLError, OSError) as e:
            say("refused %s" % (getattr(e, "reason", None) or e))


def flood(url, tls, compression, count, size):
    # asyncio, not the sync client: the sync client holds its protocol lock while a send
    # blocks, so its reader cannot take the replies in the meantime. Once the server stops
    # reading (its output to us is full) that is a deadlock of the client's own making.
    import asyncio
    from websockets.asyncio.client import connect as connect_async

    extensions = [ClientPerMessageDeflateFactory()] if compression else []
    messages = [bytes([i % 251]) * size for i in range(count)]

    async def run():
        async with connect_async(
            url, compression=None, extensions=extensions, max_size=None, ssl=tls
        ) as ws:

            async def send_all():
                for m in messages:
                    await ws.send(m)

            sender = asyncio.create_task(send_all())
            await asyncio.sleep(2)
            for i, message in enumerate(messages):
                if await asyncio.wait_for(ws.recv(), 30) != message:
                    say("flood mismatch %d" % i)
                    return
            await asyncio.wait_for(sender, 30)
            say("flood ok %d" % count)

    asyncio.run(run())


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("mode", choices=["server", "client", "old-tls", "flood"])
    parser.add_argument("--count", type=int, default=500)
    parser.add_argument("--size", type=int, default=16384)
    parser.add_argument("url", nargs="?")
    parser.add_argument("--no-context-takeover", action="store_true")
    parser.add_argument("--no-compression", action="store_true")
    parser.add_argument("--cert")
    parser.add_argument("--key")
    parser.add_argument("--ca")
    parser.add_argument("--lifetime", type=float, default=120)
    args = parser.parse_args()

    def stop_when_stdin_closes():
        sys.stdin.read()
        os._exit(0)

    threading.Thread(target=stop_when_stdin_closes, daemon=True).start()
    threading.Timer(args.lifetime, lambda: os._exit(3)).start()
    compression = not args.no_compression
    if args.mode == "server":
        run_server(args.no_context_takeover, compression, server_ssl(args.cert, args.key))
    elif args.mode == "client":
        run_client(args.url, args.no_context_takeover, compression, client_ssl(args.ca))
        sys.stdout.flush()
        os._exit(0)
    elif args.mode == "flood":
        flood(args.url, client_ssl(args.ca), compression, args.count, args.size)
        sys.stdout.flush()
        os._exit(0)
    else:
        try_old_tls(args.url, args.ca)
        sys.stdout.flush()
        os._exit(0)


if __name__ == "__main__":
    main()
