"""The safe fetcher: the one module that opens outbound connections (see docs/fetcher.md).

Rules: only ``http`` and ``https``; the host is resolved here (``resolve``) and *every* address it
resolves to must be public unless it lies in ``FetchPolicy.allow_networks``; the connection goes
to the address that was checked (no second lookup: the socket is connected here, TLS gets the
original name for SNI and certificate checks, the request the original ``Host``); each redirect is
checked the same way; at most ``max_bytes`` of the body are read, then the connection is dropped.
"""

from __future__ import annotations

import hashlib
import http.client
import ipaddress
import socket
import ssl
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import urljoin, urlsplit

from meldpunt import __version__

if TYPE_CHECKING:
    from meldpunt.config import Settings

__all__ = [
    "FetchError",
    "FetchFailed",
    "FetchPolicy",
    "FetchRefused",
    "FetchResult",
    "FetchUnresolvable",
    "check_address",
    "fetch",
    "resolve",
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


class FetchUnresolvable(FetchFailed):
    """The host name does not resolve (any more)."""


@dataclass(frozen=True)
class FetchPolicy:
    allow_networks: tuple[IPNetwork, ...] = ()
    timeout_seconds: float = 10.0
    max_bytes: int = 20 * 1024 * 1024
    max_redirects: int = 3
    ca_file: str | None = None  # PEM: certificate authorities trusted instead of the system's
    user_agent: str = f"meldpunt/{__version__} (+hotline re-check)"

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
            max_bytes=s.fetch_max_bytes,
            ca_file=s.fetch_ca_file,
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


def resolve(host: str, port: int) -> list[str]:
    """The addresses of ``host`` (tests replace this to run a simulated internet on loopback)."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        if exc.errno in (socket.EAI_NONAME, getattr(socket, "EAI_NODATA", -5)):
            raise FetchUnresolvable(f"{host} does not resolve: {exc.strerror}") from None
        raise FetchFailed(f"cannot resolve {host}: {exc.strerror}") from None
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


class _PinnedConnection(http.client.HTTPConnection):
    """An HTTP connection over a socket that was already connected (to a checked address)."""

    def __init__(self, sock: socket.socket, timeout: float) -> None:
        super().__init__("pinned.invalid", timeout=timeout)
        self.sock = sock

    def connect(self) -> None:  # never look anything up again
        if self.sock is None:
            raise FetchFailed("the connection was closed")


def _connect(scheme: str, host: str, port: int, policy: FetchPolicy) -> socket.socket:
    addresses = resolve(host, port)
    if not addresses:
        raise FetchUnresolvable(f"{host} does not resolve")
    checked = [check_address(a, policy, host=host) for a in addresses]  # all of them, first
    problems: list[str] = []
    for ip in checked:
        family = socket.AF_INET6 if ip.version == 6 else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.settimeout(policy.timeout_seconds)
        try:
            sock.connect((str(ip), port))
            if scheme == "https":
                # The certificate is checked against the name in the URL, not the address.
                context = ssl.create_default_context(cafile=policy.ca_file)
                return context.wrap_socket(sock, server_hostname=host)
            return sock
        except (OSError, ssl.SSLError) as exc:
            sock.close()
            problems.append(f"{ip}: {exc}")
    raise FetchFailed(f"cannot connect to {host} port {port} ({'; '.join(problems)})")


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
    url: str, policy: FetchPolicy, method: str
) -> tuple[http.client.HTTPConnection, http.client.HTTPResponse]:
    scheme, host, port, path = _target(url)
    sock = _connect(scheme, host, port, policy)
    connection = _PinnedConnection(sock, policy.timeout_seconds)
    headers = {
        "Host": _host_header(host, port, scheme),
        "User-Agent": policy.user_agent,
        "Accept": "*/*",
        "Accept-Encoding": "identity",
        "Connection": "close",
    }
    try:
        connection.request(method, path, headers=headers)
        return connection, connection.getresponse()
    except (OSError, http.client.HTTPException) as exc:
        connection.close()
        raise FetchFailed(f"{url[:200]}: {exc or type(exc).__name__}") from None


def _read(response: http.client.HTTPResponse, limit: int) -> tuple[bytes, bool, str | None]:
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
        return b"".join(chunks), False, f"reading the body failed: {exc or type(exc).__name__}"


def fetch(url: str, policy: FetchPolicy, *, method: str = "GET") -> FetchResult:
    """Fetch ``url`` under ``policy``. Raises FetchRefused (not allowed: do not retry) or
    FetchFailed (network trouble; FetchUnresolvable when the name does not resolve)."""
    method = method.upper()
    current = url
    for _ in range(policy.max_redirects + 1):
        connection, response = _one(current, policy, method)
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
                body, truncated, error = _read(response, policy.max_bytes)
            return FetchResult(
                url=url,
                final_url=current,
                status=response.status,
                content_type=response.getheader("Content-Type"),
                size=len(body),
                sha256=hashlib.sha256(body).hexdigest(),
                truncated=truncated,
                error=error,
            )
        finally:
            response.close()
            connection.close()  # drops whatever of the body was not read
    raise FetchFailed(f"{url[:200]}: more than {policy.max_redirects} redirects")
