"""Free TCP ports on the loopback interface."""

import random
import socket


def free_port() -> int:
    """Return a loopback port that nothing listens on right now.

    The kernel picks it, so concurrent callers (xdist workers) get different ports; another
    process could still take it before the server binds, which is rare enough to accept.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _is_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


# Drawn from the OS's randomness: pytest-randomly reseeds the ``random`` module alike in every
# xdist worker, which would make the workers draw the same ports.
_DRAW = random.SystemRandom()
# Below the range the kernel hands out (Linux: 32768 and up), so free_port() does not collide.
_LOW, _HIGH = 20000, 32767


def free_port_pairs(count: int, offset: int) -> list[int]:
    """Return ``count`` distinct ports ``p``, each with ``p`` and ``p + offset`` free right now.

    For servers that open a second port at a fixed distance from each one they are given
    (SeaweedFS's gRPC ports). The kernel cannot pick such pairs, so candidates are drawn at
    random from a range it does not use; as with ``free_port()``, another process could still
    take one before the server binds.
    """
    chosen: list[int] = []
    for _ in range(100 * count):
        port = _DRAW.randint(_LOW, _HIGH - offset)
        taken = {*chosen, *(p + offset for p in chosen)}
        if port in taken or port + offset in taken:
            continue
        if _is_free(port) and _is_free(port + offset):
            chosen.append(port)
            if len(chosen) == count:
                return chosen
    raise OSError(f"found no {count} free pairs of loopback ports {offset} apart")
