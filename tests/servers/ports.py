"""Free TCP ports on the loopback interface."""

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
