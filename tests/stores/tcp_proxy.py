"""A TCP proxy on 127.0.0.1 that cuts connections after a number of bytes, to test dropped links."""

from __future__ import annotations

import socket
import struct
import threading
from contextlib import suppress
from types import TracebackType


class CuttingProxy:
    """Forward a free local port to ``upstream``; reset any connection that carries too much.

    A connection is reset (RST, as when a network path dies) once more than ``after`` bytes went
    through it in ``direction`` (``"up"``: client to server, ``"down"``: server to client).
    ``times`` limits how many connections are cut (None: every one that gets that far), so a test
    can choose between a hiccup that a retry survives and a link that never carries a big request.
    """

    def __init__(
        self, upstream: str, *, after: int, direction: str = "up", times: int | None = None
    ) -> None:
        host, _, port = upstream.rpartition(":")
        self._upstream = (host, int(port))
        self._after = after
        self._direction = direction
        self._times = times
        self._lock = threading.Lock()
        self._sockets: set[socket.socket] = set()
        self._threads: list[threading.Thread] = []
        self.cuts = 0
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.endpoint_url = f"http://127.0.0.1:{self._listener.getsockname()[1]}"
        self._spawn(self._accept)

    def close(self) -> None:
        """Stop listening and close every connection."""
        with suppress(OSError):
            self._listener.shutdown(socket.SHUT_RDWR)  # wakes the blocked accept() on Linux
        self._listener.close()
        with self._lock:
            sockets = list(self._sockets)
        for sock in sockets:
            _reset(sock)
        for thread in self._threads:
            thread.join(timeout=10)

    def _spawn(self, target: object, *args: object) -> None:
        thread = threading.Thread(target=target, args=args, daemon=True)  # type: ignore[arg-type]
        self._threads.append(thread)
        thread.start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return  # closed
            try:
                server = socket.create_connection(self._upstream)
            except OSError:
                _reset(client)
                continue
            with self._lock:
                self._sockets.update((client, server))
            budget = [0]
            self._spawn(self._pump, client, server, self._direction == "up", budget)
            self._spawn(self._pump, server, client, self._direction == "down", budget)

    def _pump(
        self, source: socket.socket, target: socket.socket, counted: bool, seen: list[int]
    ) -> None:
        try:
            while chunk := source.recv(65536):
                if counted and self._should_cut(seen, len(chunk)):
                    keep = max(0, self._after - (seen[0] - len(chunk)))
                    target.sendall(chunk[:keep])
                    break
                target.sendall(chunk)
            else:
                target.shutdown(socket.SHUT_WR)  # a clean end: pass it on
                return
        except OSError:
            pass
        for sock in (source, target):
            _reset(sock)

    def _should_cut(self, seen: list[int], size: int) -> bool:
        with self._lock:
            seen[0] += size
            if seen[0] <= self._after or (self._times is not None and self.cuts >= self._times):
                return False
            if seen[0] - size > self._after:
                return False  # this connection was spared once already
            self.cuts += 1
            return True

    def __enter__(self) -> CuttingProxy:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def _reset(sock: socket.socket) -> None:
    """Close with an RST rather than a FIN, so the peer sees a broken connection."""
    with suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    with suppress(OSError):
        sock.shutdown(socket.SHUT_RD)  # wakes a recv() blocked in the other pump thread
    sock.close()
