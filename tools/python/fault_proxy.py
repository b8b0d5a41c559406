#!/usr/bin/env python3
"""fault_proxy: a small fault-injecting TCP proxy for testing the node/server runtime.

It listens on HOST:PORT, opens one upstream connection per accepted client connection and
copies bytes both ways unchanged, so it works for any TCP protocol, gRPC (HTTP/2 over plain
TCP, no TLS termination needed) included. On top of that it injects the faults a real slow
or flaky link shows, each switched on by one option:

  --delay MS             every forwarded chunk is held MS milliseconds, in each direction
                         (pure latency: chunks still flow back to back, the throughput is not
                         reduced; about 2*MS is added to each round trip).
  --drop-after-bytes N   after N client->server bytes on a connection, forward exactly those
                         N bytes and then close both sides abruptly (RST), as a link that dies
                         mid-request. Counted per connection; a reconnect starts again at 0.
  --reset-every S        every S seconds, reset all open connections: both sockets are
                         closed with SO_LINGER 0, so client and server each see a TCP RST
                         (ECONNRESET), not an orderly FIN.
  --refuse-for S         for the first S seconds connections are refused (ECONNREFUSED): the
                         port is bound (and written to --port-file) but not yet listening.
  --port-file FILE       write the bound port to FILE once bound (use with port 0).

Standard library only (asyncio); Python 3.7 or newer.

Example: a splitinfer server on 127.0.0.1:8001, the node connecting through the proxy, all
connections reset every 0.7 s:

  python3 tools/python/fault_proxy.py --listen 127.0.0.1:0 --port-file /tmp/proxy.port \\
      --upstream 127.0.0.1:8001 --reset-every 0.7 &
  splitinfer node --server 127.0.0.1:$(cat /tmp/proxy.port) --pipeline models/fmnist_best.yaml

Each event (connection, reset, drop) is logged as one line on stderr (--quiet: only the
start and stop lines). SIGINT/SIGTERM stop the proxy, exit status 0; at exit it prints a
summary: connections, resets, drops, bytes each way.
"""

import argparse
import asyncio
import os
import signal
import socket
import struct
import sys
import time

# Read size per chunk: large enough that a busy gRPC connection is not read byte by byte.
CHUNK = 64 * 1024


def log(msg):
    print(f"fault_proxy: {msg}", file=sys.stderr, flush=True)


def parse_hostport(text, what):
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit():
        raise argparse.ArgumentTypeError(f"{what} must be HOST:PORT, got '{text}'")
    host = host.strip("[]") or "0.0.0.0"  # "[::1]:80" and ":80" as well as "127.0.0.1:80"
    return host, int(port)


def hard_close(writer):
    """Close a connection so the peer gets a RST, not a FIN.

    SO_LINGER with a zero timeout makes close() discard unsent data and send RST; abort()
    closes the transport at once without flushing its buffer. Harmless if already closed.
    """
    if writer is None:
        return
    sock = writer.get_extra_info("socket")
    try:
        if sock is not None and sock.fileno() >= 0:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    except OSError:
        pass  # the socket is already gone: nothing to reset
    writer.transport.abort()


class Stats:
    def __init__(self):
        self.connections = 0
        self.resets = 0  # connections reset by --reset-every
        self.drops = 0  # connections dropped by --drop-after-bytes
        self.upstream_failures = 0
        self.bytes_up = 0  # client -> server
        self.bytes_down = 0  # server -> client


class Connection:
    """One proxied client connection and its upstream connection."""

    def __init__(self, proxy, client_reader, client_writer):
        self.proxy = proxy
        self.opts = proxy.opts
        self.stats = proxy.stats
        self.client_reader = client_reader
        self.client_writer = client_writer
        self.upstream_writer = None
        self.id = self.stats.connections
        self.peer = client_writer.get_extra_info("peername")
        self.up_bytes = 0
        self.killed = False  # reset or dropped: both sides already closed with RST
        self.tasks = []

    def kill(self, why):
        """Reset both sides (RST) and stop the pumps. Idempotent."""
        if self.killed:
            return
        self.killed = True
        hard_close(self.client_writer)
        hard_close(self.upstream_writer)
        for t in self.tasks:
            if t is not asyncio.current_task():
                t.cancel()
        self.proxy.log_event(f"conn {self.id}: {why}")

    async def run(self):
        host, port = self.opts.upstream
        try:
            up_reader, self.upstream_writer = await asyncio.open_connection(host, port)
        except OSError as e:
            # The upstream is down: reset the client so it sees a failure at once (a
            # gRPC client then reports UNAVAILABLE, as it would without the proxy).
            self.stats.upstream_failures += 1
            self.proxy.log_event(f"conn {self.id}: upstream {host}:{port} failed: {e}")
            hard_close(self.client_writer)
            return
        # gRPC sends many small frames; Nagle would add delays the real link does not have.
        for w in (self.client_writer, self.upstream_writer):
            sock = w.get_extra_info("socket")
            if sock is not None:
                try:
                    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                except OSError:
                    pass
        self.tasks = [
            asyncio.ensure_future(self.pump(self.client_reader, self.upstream_writer, upstream=True)),
            asyncio.ensure_future(self.pump(up_reader, self.client_writer, upstream=False)),
        ]
        try:
            await asyncio.gather(*self.tasks, return_exceptions=True)
        finally:
            if not self.killed:
                # Both directions ended normally (EOF each way): an orderly close.
                for w in (self.client_writer, self.upstream_writer):
                    w.close()

    async def pump(self, reader, writer, upstream):
        """Copy one direction until EOF, error or kill.

        With --delay, a reader stamps each chunk with its due time and a writer sends it when
        due, so chunks are delayed without being serialised behind each other's delay.
        """
        delay = self.opts.delay_ms / 1000.0
        # Bounded, so a slow receiver still pushes back on the sender (at most ~4 MB held).
        queue = asyncio.Queue(maxsize=64) if delay > 0 else None
        writer_task = asyncio.ensure_future(self.delayed_writer(queue, writer)) if queue else None
        try:
            while not self.killed:
                try:
                    data = await reader.read(CHUNK)
                except (ConnectionError, OSError):
                    data = None  # the peer reset its side: pass the reset on
                if data is None:
                    self.kill("reset by " + ("client" if upstream else "server"))
                    return
                if not data:
                    break  # EOF
                drop = False
                if upstream:
                    limit = self.opts.drop_after_bytes
                    if limit is not None and self.up_bytes + len(data) >= limit:
                        data = data[: limit - self.up_bytes]
                        drop = True
                    self.up_bytes += len(data)
                    self.stats.bytes_up += len(data)
                else:
                    self.stats.bytes_down += len(data)
                if queue:
                    await queue.put((time.monotonic() + delay, data, drop))
                    if drop:
                        await writer_task  # it sends the last bytes, then drops (kills) both sides
                        return
                    continue
                await self.send(writer, data)
                if drop:
                    self.drop()
                    return
            # EOF: forward it as a half-close, so a request-then-EOF protocol still works.
            if queue:
                await queue.put((time.monotonic() + delay, None, False))
                await writer_task
            elif not self.killed and writer.can_write_eof():
                writer.write_eof()
        finally:
            if writer_task is not None and not writer_task.done():
                if self.killed:
                    writer_task.cancel()
                else:
                    await writer_task

    async def delayed_writer(self, queue, writer):
        while True:
            due, data, drop = await queue.get()
            wait = due - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
            if self.killed:
                return
            if data is None:
                if writer.can_write_eof():
                    writer.write_eof()
                return
            await self.send(writer, data)
            if drop:
                self.drop()
                return

    async def send(self, writer, data):
        if not data:
            return
        try:
            writer.write(data)
            await writer.drain()  # back-pressure: do not buffer without bound
        except (ConnectionError, OSError):
            self.kill("write failed (peer gone)")

    def drop(self):
        self.stats.drops += 1
        self.kill(f"dropped after {self.up_bytes} client->server bytes")


class Proxy:
    def __init__(self, opts):
        self.opts = opts
        self.stats = Stats()
        self.conns = set()
        self.start = time.monotonic()

    def log_event(self, msg):
        if not self.opts.quiet:
            log(f"{time.monotonic() - self.start:8.3f}s {msg}")

    async def handle(self, reader, writer):
        self.stats.connections += 1
        conn = Connection(self, reader, writer)
        self.log_event(f"conn {conn.id}: from {conn.peer}")
        self.conns.add(conn)
        try:
            await conn.run()
        finally:
            self.conns.discard(conn)

    async def reset_loop(self, every):
        while True:
            await asyncio.sleep(every)
            victims = [c for c in self.conns if not c.killed]
            self.log_event(f"reset: {len(victims)} open connection(s)")
            for c in victims:
                self.stats.resets += 1
                c.kill("reset (--reset-every)")

    async def main(self):
        o = self.opts
        host, port = o.listen
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        bound = sock.getsockname()[1]
        if o.port_file:
            # Written before listen(): a test may start its client during --refuse-for.
            with open(o.port_file + ".tmp", "w") as f:
                f.write(f"{bound}\n")
            os.replace(o.port_file + ".tmp", o.port_file)  # atomic: never a half-written file
        faults = [f"delay {o.delay_ms:g} ms" if o.delay_ms else "",
                  f"drop after {o.drop_after_bytes} bytes" if o.drop_after_bytes else "",
                  f"reset every {o.reset_every:g} s" if o.reset_every else "",
                  f"refuse for {o.refuse_for:g} s" if o.refuse_for else ""]
        faults = ", ".join(f for f in faults if f) or "no faults"
        log(f"listening on {host}:{bound} -> {o.upstream[0]}:{o.upstream[1]} ({faults})")

        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)

        if o.refuse_for > 0:
            # A bound TCP socket that is not listening answers SYN with RST: the client gets
            # ECONNREFUSED, exactly as if nothing ran on the port, yet the port stays ours.
            self.log_event(f"refusing connections for {o.refuse_for:g} s")
            try:
                await asyncio.wait_for(stop.wait(), o.refuse_for)
            except asyncio.TimeoutError:
                pass
        server = None
        reset_task = None
        if not stop.is_set():
            server = await asyncio.start_server(self.handle, sock=sock, backlog=128)
            self.log_event("accepting connections")
            if o.reset_every:
                reset_task = asyncio.ensure_future(self.reset_loop(o.reset_every))
            await stop.wait()
        else:
            sock.close()
        if reset_task:
            reset_task.cancel()
        if server:
            server.close()
        for c in list(self.conns):
            c.kill("proxy stopping")
        s = self.stats
        log(f"stopped: {s.connections} connections, {s.resets} resets, {s.drops} drops, "
            f"{s.upstream_failures} upstream failures, {s.bytes_up} bytes up, {s.bytes_down} bytes down")


def positive_float(text):
    v = float(text)
    if v <= 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {text}")
    return v


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog="\n\n".join(__doc__.split("\n\n")[1:]))
    p.add_argument("--listen", default="127.0.0.1:0", type=lambda t: parse_hostport(t, "--listen"),
                   help="HOST:PORT to listen on (port 0: any free port; default 127.0.0.1:0)")
    p.add_argument("--upstream", required=True, type=lambda t: parse_hostport(t, "--upstream"),
                   help="HOST:PORT to forward to (the server)")
    p.add_argument("--delay", dest="delay_ms", type=float, default=0.0, metavar="MS",
                   help="milliseconds added to each forwarded chunk, each direction")
    p.add_argument("--drop-after-bytes", type=int, default=None, metavar="N",
                   help="reset both sides after N client->server bytes on a connection")
    p.add_argument("--reset-every", type=positive_float, default=None, metavar="S",
                   help="every S seconds reset all open connections (SO_LINGER 0: RST)")
    p.add_argument("--refuse-for", type=float, default=0.0, metavar="S",
                   help="refuse connections during the first S seconds")
    p.add_argument("--port-file", metavar="FILE", help="write the bound port to FILE")
    p.add_argument("--quiet", action="store_true", help="log only start and stop, not each event")
    opts = p.parse_args(argv)
    if opts.delay_ms < 0 or opts.refuse_for < 0:
        p.error("--delay and --refuse-for must not be negative")
    if opts.drop_after_bytes is not None and opts.drop_after_bytes < 1:
        p.error("--drop-after-bytes must be at least 1")
    try:
        asyncio.run(Proxy(opts).main())
    except OSError as e:
        log(f"error: {e}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
