"""The hosters' HTTP servers: one ``asyncio.start_server`` per address, all on one port and one
event loop, answering HTTP/1.1 GET and HEAD, one request per connection (``Connection: close``).

What to answer is not decided here: ``answer(number, host, target)`` gives the status, the
content type and the body for a request that reached hoster ``number`` with ``Host: host``.
A body that is a function is made in a worker thread (a picture not made yet), so that the loop
goes on serving everyone else meanwhile.
A hoster that is down has no server on its address: connections to it are refused.
``latency`` (seconds) holds every answer back that long, as a real network's round trips would,
without holding the loop: a thousand answers can wait at once.
"""

from __future__ import annotations

import asyncio
import html
from collections import Counter
from collections.abc import Callable, Iterable

from meldpunt.sim.loop import LoopThread

__all__ = ["Answer", "Body", "HttpServers", "page"]

Body = bytes | Callable[[], bytes]
Answer = Callable[[int, str, str], tuple[int, str, Body]]

_REASONS = {200: "OK", 400: "Bad Request", 404: "Not Found", 405: "Method Not Allowed"}
_READ_SECONDS = 10.0


class HttpServers:
    """Servers for hosters by number, each on its own address (``addresses[number]``)."""

    def __init__(self, loop: LoopThread, addresses: dict[int, str], answer: Answer) -> None:
        self.loop = loop
        self.addresses = addresses
        self.answer = answer
        self.port = 0
        self.requests: Counter[int] = Counter()  # answers by status
        self.latency = 0.0  # seconds every answer waits (0: none)
        self._servers: dict[int, asyncio.Server] = {}

    def listening(self, number: int) -> bool:
        return number in self._servers

    def start(self, numbers: Iterable[int], port: int = 0) -> int:
        """Listen for ``numbers`` on ``port`` (0: one that is free on every address); returns
        the port."""
        self.port = self.loop.call(self._listen_all(list(numbers), port))
        return self.port

    def stop(self) -> None:
        if self._servers:
            self.loop.call(self._close_all())

    def go_down(self, number: int) -> None:
        self.loop.call(self._go_down(number))

    def come_up(self, number: int) -> None:
        """Listen again; raises OSError when the address and port were taken meanwhile."""
        self.loop.call(self._come_up(number))

    async def _listen(self, number: int, port: int) -> asyncio.Server:
        async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await self._serve(number, reader, writer)

        return await asyncio.start_server(
            serve, self.addresses[number], port, backlog=512, reuse_address=True
        )

    async def _listen_all(self, numbers: list[int], wanted: int) -> int:
        for _attempt in range(20):
            port = wanted
            servers: dict[int, asyncio.Server] = {}
            try:
                for number in numbers:
                    servers[number] = await self._listen(number, port)
                    if port == 0:
                        port = servers[number].sockets[0].getsockname()[1]
            except OSError:
                for server in servers.values():
                    server.close()
                if wanted:
                    raise  # the port asked for is taken on one of the addresses
                continue  # the port one address gave is taken on another: draw again
            self._servers.update(servers)
            return port
        raise OSError("no port was free on every hoster's address after 20 attempts")

    async def _close_all(self) -> None:
        servers, self._servers = list(self._servers.values()), {}
        for server in servers:
            server.close()
        for server in servers:
            await server.wait_closed()

    async def _go_down(self, number: int) -> None:
        server = self._servers.pop(number, None)
        if server is not None:
            server.close()
            await server.wait_closed()

    async def _come_up(self, number: int) -> None:
        if number not in self._servers and self.port:
            self._servers[number] = await self._listen(number, self.port)

    async def _serve(
        self, number: int, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        try:
            try:
                head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), _READ_SECONDS)
            except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, TimeoutError):
                return
            if self.latency > 0:
                await asyncio.sleep(self.latency)
            status, content_type, made, head_only = self._respond(number, head)
            if callable(made):
                body = await asyncio.get_running_loop().run_in_executor(None, made)
            else:
                body = made
            self.requests[status] += 1
            header = (
                f"HTTP/1.1 {status} {_REASONS.get(status, 'Error')}\r\n"
                f"Content-Type: {content_type}\r\n"
                f"Content-Length: {len(body)}\r\n"
                "Connection: close\r\n"
                f"Server: sim-h{number}\r\n\r\n"
            ).encode("ascii")
            writer.write(header if head_only else header + body)
            await writer.drain()
        except ConnectionError:
            pass
        finally:
            writer.close()

    def _respond(self, number: int, head: bytes) -> tuple[int, str, Body, bool]:
        lines = head.decode("latin-1").split("\r\n")
        words = lines[0].split()
        if len(words) != 3 or not words[2].startswith("HTTP/"):
            return 400, "text/plain", b"bad request\n", False
        method, target = words[0], words[1]
        if method not in ("GET", "HEAD"):
            return 405, "text/plain", b"only GET and HEAD\n", False
        host = ""
        for line in lines[1:]:
            name, _, value = line.partition(":")
            if name.strip().lower() == "host":
                host = value.strip()
                break
        status, content_type, body = self.answer(number, host, target)
        return status, content_type, body, method == "HEAD"


def page(title: str, links: list[str]) -> bytes:
    """A small HTML page: pictures (paths with ``/i/``) shown, other links listed."""
    items = "\n".join(
        f'<li><a href="{html.escape(link)}"><img src="{html.escape(link)}" alt=""></a></li>'
        if "/i/" in link
        else f'<li><a href="{html.escape(link)}">{html.escape(link)}</a></li>'
        for link in links
    )
    return (
        '<!doctype html>\n<html><head><meta charset="utf-8">'
        f"<title>{html.escape(title)}</title></head>\n<body><h1>{html.escape(title)}</h1>\n"
        f"<ul>\n{items}\n</ul>\n</body></html>\n"
    ).encode()
