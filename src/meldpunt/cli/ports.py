"""Whether the port the service is to listen on is free, asked before anything is loaded.

Standard library only, so that `make run` can ask it (``python3 src/meldpunt/cli/ports.py HOST
PORT``) before it installs anything, and `meldpunt demo` and `meldpunt serve` before they hash,
migrate or load an index.
"""

from __future__ import annotations

import errno
import socket
import sys


def port_problem(host: str, port: int) -> str | None:
    """Why the service could not listen on ``host:port``; None when it can."""
    try:
        family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0][0]
    except (OSError, UnicodeError) as exc:
        return f"cannot listen on {host}: {exc}"
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        # As the server will: a port that only has closed connections waiting out is free.
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                return f"port {port} on {host} is in use (by another meldpunt, or something else)"
            if exc.errno == errno.EACCES:
                return f"port {port} needs privileges to listen on"
            return f"cannot listen on {host}:{port}: {exc.strerror or exc}"
    return None


def main(argv: list[str]) -> int:
    """``ports.py HOST PORT [HINT]``: exit 1 with a message on stderr when the port is taken."""
    host, text = argv[0], argv[1]
    if not text.isdigit() or not 0 < int(text) < 65536:
        print(f"error: the port is a number from 1 to 65535, not {text!r}", file=sys.stderr)
        return 2
    port = int(text)
    hint = argv[2] if len(argv) > 2 else f"make run PORT={port + 1}"
    problem = port_problem(host, port)
    if problem is None:
        return 0
    print(f"error: {problem}. Choose another: {hint}", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
