"""The safe fetcher: the one module that opens outbound connections (see docs/fetcher.md).

Rules: only ``http`` and ``https``; the host is resolved here (``resolve``) and *every* address it
resolves to must be public unless it lies in ``FetchPolicy.allow_networks``; the connection goes
to the address that was checked (no second lookup: the socket is connected here, TLS gets the
original name for SNI and certificate checks, the request the original ``Host``); each redirect is
checked the same way; at most ``max_bytes`` of the body are read, then the connection is dropped.
Every wait on the network (connect, TLS, each read) ends after ``timeout_seconds``, and the whole
fetch, redirects included, after ``total_seconds``: a server that answers one byte at a time
cannot hold the worker longer than that.
"""

from __future__ import annotations

import hashlib
import http.client
import io
import ipaddress
import os
import socket
import ssl
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urljoin, urlsplit

from meldpunt import __version__, clock

if TYPE_CHECKING:
    from meldpunt.config import Settings

__all__ = [
    "FetchError",
    "FetchConnectionRefused",
    "FetchFailed",
    "FetchPolicy",
    "FetchRefused",
    "FetchResult",
    "FetchTimedOut",
    "FetchUnresolvable",
    "NameTable",
    "check_address",
    "fetch",
    "resolve",
    "resolve_host",
]

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

REDIRECTS = (301, 302, 303, 307, 308)
DEFAULT_PORTS = {"http": 80, "https": 443}
_SHARED_ADDRESS_SPACE = ipaddress.ip_network("100.64.0.0/10")  # carrier-grade NAT


class FetchError(Exception):
    """A fetch that gave no answer; the message says why."""


class FetchRefused(FetchError):
    """The URL is not one meldpunt may fetch (scheme, or an address inside the network).
    Trying again will not help."""


class FetchFailed(FetchError):
    """The network failed: no connection, a timeout, a broken answer. Worth trying later."""


class FetchConnectionRefused(FetchFailed):
    """Every address of the host refused the connection: the host answers, nothing listens
    there (a re-check counts it as a miss, unlike a timeout)."""


class FetchUnresolvable(FetchFailed):
    """The host name does not resolve (any more)."""


class FetchTimedOut(FetchFailed):
    """The whole fetch took longer than the policy's ``total_seconds``."""


@dataclass(frozen=True)
class FetchPolicy:
    allow_networks: tuple[IPNetwork, ...] = ()
    timeout_seconds: float = 10.0  # each connect, handshake and read
    total_seconds: float = 60.0  # the whole fetch, redirects included
    max_bytes: int = 20 * 1024 * 1024
    max_redirects: int = 3
    ca_file: str | None = None  # PEM: certificate authorities trusted instead of the system's
    user_agent: str = f"meldpunt/{__version__} (+hotline re-check)"
    #: Names looked up here before DNS (the simulation's hosters; an operator's overrides).
    names: NameTable | None = field(default=None, compare=False)

    @classmethod
    def from_settings(cls, settings: Settings | None = None) -> FetchPolicy:
        """The policy the configuration asks for (the ``fetch_*`` settings)."""
        from meldpunt.config import get_settings

        s = settings or get_settings()
        return cls(
            allow_networks=tuple(
                ipaddress.ip_network(net, strict=False) for net in s.fetch_allow_networks
            ),
            timeout_seconds=s.fetch_timeout_seconds,
            total_seconds=s.fetch_total_seconds,
            max_bytes=s.fetch_max_bytes,
            ca_file=s.fetch_ca_file,
            names=NameTable(s.resolver_hosts_file) if s.resolver_hosts_file else None,
        )


@dataclass(frozen=True)
class FetchResult:
    url: str  # as asked
    final_url: str  # after redirects
    status: int
    content_type: str | None
    size: int  # bytes read (at most max_bytes)
    sha256: str  # of the bytes read
    truncated: bool = False  # the body was longer than max_bytes
    error: str | None = None  # the answer came, but reading its body failed
    #: The bytes read, in memory only (at most ``max_bytes``): the caller hashes them and lets
    #: them go; nothing of meldpunt writes them anywhere.
    body: bytes = field(default=b"", repr=False)


def _unwrap(ip: IPAddress) -> list[IPAddress]:
    """The address and any IPv4 address it carries (mapped, 6to4, Teredo)."""
    found: list[IPAddress] = [ip]
    if isinstance(ip, ipaddress.IPv6Address):
        for inner in (ip.ipv4_mapped, ip.sixtofour, ip.teredo[1] if ip.teredo else None):
            if inner is not None:
                found.append(inner)
    return found


def _is_internal(ip: IPAddress) -> bool:
    return (
        ip.is_private
        or ip.is_loopback
        or ip.is_link_local
        or ip.is_multicast
        or ip.is_reserved
        or ip.is_unspecified
        or (ip.version == 4 and ip in _SHARED_ADDRESS_SPACE)
        or not ip.is_global
    )


def check_address(address: str, policy: FetchPolicy, *, host: str | None = None) -> IPAddress:
    """The address, if the policy lets meldpunt connect to it; raises FetchRefused otherwise."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    candidates = _unwrap(ip)
    allowed = policy.allow_networks
    if any(c in net for c in candidates for net in allowed if c.version == net.version):
        return ip
    if any(_is_internal(c) for c in candidates):
        if host and host.strip("[]") != str(ip):
            raise FetchRefused(f"{host} resolves to {ip}, an address inside the network; refused")
        raise FetchRefused(f"{ip} is an address inside the network; refused")
    return ip


_MAX_NAME_LINE = 4096


class NameTable:
    """Host names and their addresses from a file in the shape of ``/etc/hosts`` (``address
    name...`` per line, ``#`` comments), read again whenever the file changes, so that a
    simulation can move a name to another hoster or take it away while meldpunt runs. A name
    that is not in the table is resolved by DNS; a missing file is an empty table."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        self._stamp: tuple[int, int] | None = None
        self._names: dict[str, list[str]] = {}

    def _load(self) -> dict[str, list[str]]:
        try:
            info = self.path.stat()
        except OSError:
            return {}
        stamp = (info.st_mtime_ns, info.st_size)
        with self._lock:
            if stamp != self._stamp:
                try:
                    names = self._read()
                except OSError:  # gone or unreadable meanwhile: the last table read stands
                    return self._names
                self._names, self._stamp = names, stamp
            return self._names

    def _read(self) -> dict[str, list[str]]:
        """The file's names, read a line at a time (a line at most ``_MAX_NAME_LINE``
        characters; a longer one, or one that is not ``address name...``, is skipped): a
        huge or binary file costs reading time, not its size in memory."""
        names: dict[str, list[str]] = {}
        with self.path.open(encoding="utf-8", errors="replace", newline="") as handle:
            while line := handle.readline(_MAX_NAME_LINE + 1):
                if len(line) > _MAX_NAME_LINE:
                    while line and not line.endswith(("\n", "\r")):
                        line = handle.readline(_MAX_NAME_LINE + 1)
                    continue
                words = line.split("#", 1)[0].split()
                if len(words) < 2:
                    continue
                try:
                    address = str(ipaddress.ip_address(words[0]))
                except ValueError:
                    continue
                for name in words[1:]:
                    names.setdefault(name.lower().rstrip("."), []).append(address)
        return names

    def lookup(self, host: str) -> list[str] | None:
        """The table's addresses of ``host``, or None when the table does not name it."""
        return self._load().get(host.lower().rstrip("."))


def resolve_host(host: str, port: int, policy: FetchPolicy) -> list[str]:
    """The addresses of ``host``: the policy's name table first, then ``resolve`` (DNS). This is
    meldpunt's one resolver; attribution uses it too, so it sees what the fetcher connects to."""
    if policy.names is not None:
        found = policy.names.lookup(host)
        if found is not None:
            return found
    try:
        return [str(ipaddress.ip_address(host.strip("[]")))]
    except ValueError:
        return resolve(host, port)


def resolve(host: str, port: int) -> list[str]:
    """The addresses of ``host`` by DNS (tests replace this to run a simulated internet on
    loopback)."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        if exc.errno in (socket.EAI_NONAME, getattr(socket, "EAI_NODATA", -5)):
            raise FetchUnresolvable(f"{host} does not resolve: {exc.strerror}") from None
        raise FetchFailed(f"cannot resolve {host}: {exc.strerror}") from None
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


class _Deadline:
    """When a fetch must be over (by ``clock``): each wait on the network gets at most what is
    left of it."""

    def __init__(self, url: str, policy: FetchPolicy) -> None:
        self.url, self.policy = url, policy
        self.ends = clock.get_clock().monotonic() + policy.total_seconds

    def passed(self) -> bool:
        return clock.get_clock().monotonic() >= self.ends

    def expired(self) -> FetchTimedOut:
        return FetchTimedOut(
            f"{self.url[:200]}: the fetch took longer than {self.policy.total_seconds:g} s "
            "(fetch_total_seconds); timed out"
        )

    def arm(self, sock: socket.socket) -> None:
        """Give ``sock`` the per-read timeout or what is left of the fetch, if less."""
        left = self.ends - clock.get_clock().monotonic()
        if left <= 0:
            raise self.expired()
        sock.settimeout(min(self.policy.timeout_seconds, left))


class _DeadlineReader(io.RawIOBase):
    """A socket's reads, each armed with what is left of the fetch's time."""

    def __init__(self, owner: _DeadlineSocket) -> None:
        super().__init__()
        self._owner = owner

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        self._owner.deadline.arm(self._owner.sock)
        return self._owner.sock.recv_into(buffer)

    def close(self) -> None:
        if not self.closed:
            self._owner.reader_closed()
        super().close()


class _DeadlineSocket:
    """What ``http.client`` needs of a socket (send, a reading file, close), with every send and
    read ending by the fetch's deadline, whether the server is slow to start or drips. Like a
    socket, it stays open while a file made from it is open (the response reads after the
    connection is closed)."""

    def __init__(self, sock: socket.socket, deadline: _Deadline) -> None:
        self.sock, self.deadline = sock, deadline
        self._readers, self._closed = 0, False

    def sendall(self, data: bytes) -> None:
        self.deadline.arm(self.sock)
        self.sock.sendall(data)

    def makefile(self, mode: str) -> io.BufferedReader:
        self._readers += 1
        return io.BufferedReader(_DeadlineReader(self))

    def reader_closed(self) -> None:
        self._readers -= 1
        if self._closed and not self._readers:
            self.sock.close()

    def close(self) -> None:
        self._closed = True
        if not self._readers:
            self.sock.close()


class _PinnedConnection(http.client.HTTPConnection):
    """An HTTP connection over a socket that was already connected (to a checked address)."""

    def __init__(self, sock: _DeadlineSocket, timeout: float) -> None:
        super().__init__("pinned.invalid", timeout=timeout)
        self.sock = sock

    def connect(self) -> None:  # never look anything up again
        if self.sock is None:
            raise FetchFailed("the connection was closed")


def _connect(
    scheme: str, host: str, port: int, policy: FetchPolicy, deadline: _Deadline
) -> socket.socket:
    addresses = resolve_host(host, port, policy)
    if not addresses:
        raise FetchUnresolvable(f"{host} does not resolve")
    checked = [check_address(a, policy, host=host) for a in addresses]  # all of them, first
    problems: list[str] = []
    refused = 0
    for ip in checked:
        family = socket.AF_INET6 if ip.version == 6 else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            deadline.arm(sock)
            sock.connect((str(ip), port))
            if scheme == "https":
                deadline.arm(sock)  # the handshake as a whole: what is left
                # The certificate is checked against the name in the URL, not the address.
                context = ssl.create_default_context(cafile=policy.ca_file)
                return context.wrap_socket(sock, server_hostname=host)
            return sock
        except (OSError, ssl.SSLError) as exc:
            sock.close()
            if deadline.passed():
                raise deadline.expired() from None
            problems.append(f"{ip}: {exc}")
            refused += isinstance(exc, ConnectionRefusedError)
        except FetchTimedOut:
            sock.close()
            raise
    message = f"cannot connect to {host} port {port} ({'; '.join(problems)})"
    if refused == len(checked):
        raise FetchConnectionRefused(message)
    raise FetchFailed(message)


def _host_header(host: str, port: int, scheme: str) -> str:
    shown = f"[{host}]" if ":" in host else host
    return shown if port == DEFAULT_PORTS[scheme] else f"{shown}:{port}"


def _target(url: str) -> tuple[str, str, int, str]:
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise FetchRefused(f"{url[:100]!r} is not a URL: {exc}") from None
    scheme = parts.scheme.lower()
    if scheme not in DEFAULT_PORTS:
        raise FetchRefused(f"{url[:100]!r}: only http and https URLs are fetched, not {scheme!r}")
    if not parts.hostname:
        raise FetchRefused(f"{url[:100]!r} has no host")
    try:
        host = parts.hostname.encode("idna").decode("ascii")
    except UnicodeError:
        raise FetchRefused(f"{url[:100]!r}: the host name is not valid") from None
    path = parts.path or "/"
    if parts.query:
        path += "?" + parts.query
    return scheme, host, port or DEFAULT_PORTS[scheme], path


def _one(
    url: str,
    policy: FetchPolicy,
    method: str,
    deadline: _Deadline,
    extra: Mapping[str, str] | None = None,
) -> tuple[http.client.HTTPConnection, http.client.HTTPResponse]:
    scheme, host, port, path = _target(url)
    sock = _connect(scheme, host, port, policy, deadline)
    connection = _PinnedConnection(_DeadlineSocket(sock, deadline), policy.timeout_seconds)
    headers = {
        "Host": _host_header(host, port, scheme),
        "User-Agent": policy.user_agent,
        "Accept": "*/*",
        "Accept-Encoding": "identity",
        "Connection": "close",
        **(extra or {}),
    }
    try:
        connection.request(method, path, headers=headers)
        return connection, connection.getresponse()
    except (OSError, http.client.HTTPException) as exc:
        connection.close()
        if deadline.passed():
            raise deadline.expired() from None
        raise FetchFailed(f"{url[:200]}: {exc or type(exc).__name__}") from None
    except FetchTimedOut:
        connection.close()
        raise


def _read(
    response: http.client.HTTPResponse, limit: int, deadline: _Deadline
) -> tuple[bytes, bool, str | None]:
    chunks: list[bytes] = []
    size = 0
    try:
        while size < limit:
            chunk = response.read(min(64 * 1024, limit - size))
            if not chunk:
                return b"".join(chunks), False, None
            chunks.append(chunk)
            size += len(chunk)
        more = response.read(1)  # one byte tells whether there was more
        return b"".join(chunks), bool(more), None
    except (OSError, http.client.HTTPException) as exc:
        if deadline.passed():
            raise deadline.expired() from None
        return b"".join(chunks), False, f"reading the body failed: {exc or type(exc).__name__}"


def fetch(
    url: str,
    policy: FetchPolicy,
    *,
    method: str = "GET",
    headers: Mapping[str, str] | None = None,
) -> FetchResult:
    """Fetch ``url`` under ``policy``. Raises FetchRefused (not allowed: do not retry) or
    FetchFailed (network trouble; FetchUnresolvable when the name does not resolve,
    FetchTimedOut when the whole fetch took longer than ``policy.total_seconds``).
    ``headers`` are sent besides the fetcher's own (a partner's feed token, say)."""
    method = method.upper()
    current = url
    deadline = _Deadline(url, policy)
    for _ in range(policy.max_redirects + 1):
        connection, response = _one(current, policy, method, deadline, headers)
        try:
            location = response.getheader("Location")
            if response.status in REDIRECTS and location:
                current = urljoin(current, location.strip())
                if response.status == 303:
                    method = "GET"
                continue
            if method == "HEAD":
                body, truncated, error = b"", False, None
            else:
                body, truncated, error = _read(response, policy.max_bytes, deadline)
            return FetchResult(
                url=url,
                final_url=current,
                status=response.status,
                content_type=response.getheader("Content-Type"),
                size=len(body),
                sha256=hashlib.sha256(body).hexdigest(),
                truncated=truncated,
                error=error,
                body=body,
            )
        finally:
            response.close()
            connection.close()  # drops whatever of the body was not read
    raise FetchFailed(f"{url[:200]}: more than {policy.max_redirects} redirects")
