"""A small WebDriver BiDi client for the page tests in Firefox.

Debian's ``firefox-esr`` speaks WebDriver BiDi itself when started with
``--remote-debugging-port``: no geckodriver and no browser build of Playwright's own (neither
can be had here). ``firefox()`` starts it headless with a fresh profile, connects to
``ws://127.0.0.1:PORT/session`` and opens a session; ``Tab`` is one browsing context with the
few things the page tests do: go to a page, run a function in it, choose files for an input,
click, fill, wait, and the requests it made with their bodies (``network.addDataCollector``,
Firefox 146 and later).

The profile sends every request that is not for the loopback range to a closed loopback port,
and turns off what Firefox would otherwise fetch by itself (updates, telemetry, remote
settings), so the browser reaches nothing outside this machine.
"""

from __future__ import annotations

import base64
import itertools
import json
import os
import queue
import re
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

from websockets.sync.client import ClientConnection, connect

FIREFOX_NAMES = ("firefox-esr", "firefox")

# Everything but loopback goes to the discard port, which nothing listens on here.
PREFS = {
    "network.proxy.type": 1,
    "network.proxy.http": "127.0.0.1",
    "network.proxy.http_port": 9,
    "network.proxy.ssl": "127.0.0.1",
    "network.proxy.ssl_port": 9,
    "network.proxy.socks_remote_dns": True,
    "network.proxy.allow_hijacking_localhost": False,
    "network.trr.mode": 5,
    "network.dns.disablePrefetch": True,
    "network.prefetch-next": False,
    "network.captive-portal-service.enabled": False,
    "network.connectivity-service.enabled": False,
    "app.update.enabled": False,
    "app.update.auto": False,
    "app.normandy.enabled": False,
    "app.shield.optoutstudies.enabled": False,
    "browser.safebrowsing.malware.enabled": False,
    "browser.safebrowsing.phishing.enabled": False,
    "browser.safebrowsing.downloads.enabled": False,
    "browser.search.update": False,
    "browser.shell.checkDefaultBrowser": False,
    "datareporting.policy.dataSubmissionEnabled": False,
    "datareporting.healthreport.uploadEnabled": False,
    "toolkit.telemetry.enabled": False,
    "toolkit.telemetry.unified": False,
    "dom.push.connection.enabled": False,
    "extensions.update.enabled": False,
    "extensions.getAddons.cache.enabled": False,
    "messaging-system.rsexperimentloader.enabled": False,
    "services.settings.server": "http://127.0.0.1:9/v1",
}


class BidiError(RuntimeError):
    pass


def firefox_binary() -> Path | None:
    """Firefox on this machine (``MELDPUNT_FIREFOX`` first), or None."""
    named = os.environ.get("MELDPUNT_FIREFOX")
    if named:
        return Path(named) if Path(named).exists() else None
    for name in FIREFOX_NAMES:
        found = shutil.which(name)
        if found:
            return Path(found)
    return None


class Session:
    """One BiDi connection: commands by id, events kept until a test reads them."""

    def __init__(self, socket: ClientConnection) -> None:
        self.socket = socket
        self._ids = itertools.count(1)
        self._answers: dict[int, dict[str, Any]] = {}
        self.events: list[dict[str, Any]] = []

    def command(self, method: str, params: dict[str, Any], timeout: float = 60) -> Any:
        ident = next(self._ids)
        self.socket.send(json.dumps({"id": ident, "method": method, "params": params}))
        deadline = time.monotonic() + timeout
        while ident not in self._answers:
            left = deadline - time.monotonic()
            if left <= 0:
                raise BidiError(f"{method}: no answer in {timeout} s")
            self._receive(left)
        answer = self._answers.pop(ident)
        if answer.get("type") == "error":
            raise BidiError(f"{method}: {answer.get('error')}: {answer.get('message')}")
        return answer.get("result")

    def _receive(self, timeout: float) -> None:
        try:
            message = json.loads(self.socket.recv(timeout=timeout))
        except TimeoutError:
            return
        if message.get("type") == "event":
            self.events.append(message)
            if message["method"] == "browsingContext.userPromptOpened":
                # A person who clicks "withdraw" answers the confirmation with OK.
                context = message["params"]["context"]
                self.socket.send(json.dumps({
                    "id": next(self._ids), "method": "browsingContext.handleUserPrompt",
                    "params": {"context": context, "accept": True},
                }))  # fmt: skip
        elif "id" in message:
            self._answers[message["id"]] = message

    def pump(self, seconds: float) -> None:
        """Take in what the browser sends for a while (events, prompts)."""
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            self._receive(left)


class Tab:
    """One browsing context (a tab) on ``base_url``."""

    def __init__(self, session: Session, base_url: str) -> None:
        self.session, self.base_url = session, base_url.rstrip("/")
        self.context = session.command("browsingContext.create", {"type": "tab"})["context"]
        self._collector = session.command(
            "network.addDataCollector",
            {"dataTypes": ["request"], "maxEncodedDataSize": 20_000_000,
             "contexts": [self.context]},
        )["collector"]  # fmt: skip

    # --- the page --------------------------------------------------------------------------

    def goto(self, path: str) -> None:
        url = path if "://" in path else f"{self.base_url}{path}"
        self.session.command(
            "browsingContext.navigate", {"context": self.context, "url": url, "wait": "complete"}
        )

    def reload(self) -> None:
        self.session.command(
            "browsingContext.reload", {"context": self.context, "wait": "complete"}
        )

    def evaluate(self, function: str, *args: Any, timeout: float = 120) -> Any:
        """``function(*args)`` in the page, awaited; its result as JSON would give it."""
        wrapped = (
            "async (...args) => JSON.stringify("
            f"await ({function})(...args.map((a) => JSON.parse(a)))) ?? 'null'"
        )
        result = self.session.command(
            "script.callFunction",
            {
                "functionDeclaration": wrapped,
                "arguments": [{"type": "string", "value": json.dumps(a)} for a in args],
                "target": {"context": self.context},
                "awaitPromise": True,
                "resultOwnership": "none",
                "userActivation": True,
            },
            timeout=timeout,
        )
        if result["type"] == "exception":
            details = result["exceptionDetails"]
            raise BidiError(f"in the page: {details.get('text')}")
        return json.loads(result["result"]["value"])

    def _on(self, selector: str, body: str, *args: Any) -> Any:
        """``body`` with ``element`` bound to the first match of ``selector``."""
        function = (
            "(selector, ...args) => { const element = document.querySelector(selector);"
            " if (!element) throw new Error(`nothing matches ${selector}`);"
            f" {body} }}"
        )
        return self.evaluate(function, selector, *args)

    def click(self, selector: str) -> None:
        # Later, as a person's click is: a confirmation it opens must not hold up this call.
        self._on(selector, "setTimeout(() => element.click(), 0); return true;")
        self.session.pump(0.05)

    def check(self, selector: str) -> None:
        self._on(selector, "if (!element.checked) element.click(); return element.checked;")

    def fill(self, selector: str, value: str) -> None:
        self._on(
            selector,
            "element.focus(); element.value = args[0];"
            " element.dispatchEvent(new Event('input', {bubbles: true}));"
            " element.dispatchEvent(new Event('change', {bubbles: true})); return true;",
            value,
        )

    def text(self, selector: str) -> str:
        return str(self._on(selector, "return element.innerText;"))

    def texts(self, selector: str) -> list[str]:
        return list(
            self.evaluate(
                "(s) => [...document.querySelectorAll(s)].map((e) => e.innerText)",
                selector,
            )
        )

    def count(self, selector: str) -> int:
        return int(self.evaluate("(s) => document.querySelectorAll(s).length", selector))

    def attribute(self, selector: str, name: str) -> str | None:
        return self._on(selector, "return element.getAttribute(args[0]);", name)  # type: ignore[no-any-return]

    def visible(self, selector: str) -> bool:
        return bool(
            self.evaluate(
                "(s) => { const e = document.querySelector(s);"
                " return !!e && e.getClientRects().length > 0"
                " && getComputedStyle(e).visibility !== 'hidden'; }",
                selector,
            )
        )

    def wait_for(self, selector: str, timeout: float = 60) -> None:
        """Until ``selector`` matches a visible element."""
        deadline = time.monotonic() + timeout
        while not self.visible(selector):
            if time.monotonic() > deadline:
                raise BidiError(f"{selector} did not show within {timeout} s")
            self.session.pump(0.1)

    def wait_text(self, selector: str, text: str, timeout: float = 60) -> None:
        """Until the first match of ``selector`` shows ``text``."""
        deadline = time.monotonic() + timeout
        shown = "(s) => document.querySelector(s)?.innerText ?? null"
        while self.evaluate(shown, selector) != text:
            if time.monotonic() > deadline:
                raise BidiError(f"{selector} did not show {text!r} within {timeout} s")
            self.session.pump(0.1)

    def set_files(self, selector: str, paths: list[Path]) -> None:
        found = self.session.command(
            "script.evaluate",
            {
                "expression": f"document.querySelector({json.dumps(selector)})",
                "target": {"context": self.context},
                "awaitPromise": False,
                "resultOwnership": "root",
            },
        )
        element = found["result"]
        if element.get("type") != "node":
            raise BidiError(f"nothing matches {selector}")
        self.session.command(
            "input.setFiles",
            {
                "context": self.context,
                "element": {"sharedId": element["sharedId"]},
                "files": [str(p) for p in paths],
            },
        )

    # --- what the tab did ------------------------------------------------------------------

    def requests(self) -> list[tuple[str, str, bytes]]:
        """Every request this tab made: method, URL and the body it carried."""
        self.session.pump(0.2)
        sent = []
        for event in self.session.events:
            if event["method"] != "network.beforeRequestSent":
                continue
            params = event["params"]
            if params.get("context") != self.context or params.get("redirectCount", 0):
                continue
            request = params["request"]
            body = b""
            if request.get("bodySize"):
                body = self._body(request["request"])
            sent.append((request["method"], request["url"], body))
        return sent

    def _body(self, request_id: str) -> bytes:
        data = self.session.command(
            "network.getData",
            {"dataType": "request", "request": request_id, "collector": self._collector},
        )["bytes"]
        if data["type"] == "base64":
            return base64.b64decode(data["value"])
        return str(data["value"]).encode("utf-8")

    def errors(self) -> list[str]:
        """Errors the page's own scripts raised."""
        return [
            str(event["params"].get("text"))
            for event in self.session.events
            if event["method"] == "log.entryAdded"
            and event["params"].get("type") == "javascript"
            and event["params"].get("level") == "error"
        ]

    def close(self) -> None:
        self.session.command("browsingContext.close", {"context": self.context})


class Firefox:
    def __init__(self, session: Session, version: str) -> None:
        self.session, self.version = session, version

    def new_tab(self, base_url: str) -> Tab:
        return Tab(self.session, base_url)


@contextmanager
def firefox(binary: Path, *, start_timeout: float = 60) -> Iterator[Firefox]:
    """Firefox headless with a fresh profile, a BiDi session open on it."""
    profile = Path(tempfile.mkdtemp(prefix="meldpunt-firefox-"))
    (profile / "user.js").write_text(
        "".join(f"user_pref({json.dumps(k)}, {json.dumps(v)});\n" for k, v in PREFS.items())
    )
    process = subprocess.Popen(
        [str(binary), "--headless", "--no-remote", "--profile", str(profile),
         "--remote-debugging-port", "0", "about:blank"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "MOZ_CRASHREPORTER_DISABLE": "1"}, start_new_session=True,
    )  # fmt: skip
    try:
        address = _listening(process, start_timeout)
        with connect(f"{address}/session", max_size=None, open_timeout=30) as socket:
            session = Session(socket)
            # Prompts stay open until the test answers them (see Session._receive).
            ignore = {"alwaysMatch": {"unhandledPromptBehavior": {"default": "ignore"}}}
            started = session.command("session.new", {"capabilities": ignore})
            session.command(
                "session.subscribe",
                {"events": ["network.beforeRequestSent", "log.entryAdded",
                            "browsingContext.userPromptOpened"]},
            )  # fmt: skip
            yield Firefox(session, started["capabilities"].get("browserVersion", "?"))
            # It may close the socket before it answers.
            with suppress(Exception):
                session.command("browser.close", {}, timeout=10)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
        shutil.rmtree(profile, ignore_errors=True)


def _listening(process: subprocess.Popen[str], timeout: float) -> str:
    """The WebSocket address Firefox says it listens on. What it says is read to the end in a
    thread of its own, so that a full pipe never holds the browser up."""
    lines: queue.Queue[str | None] = queue.Queue()

    def read() -> None:
        for line in process.stderr or ():
            lines.put(line)
        lines.put(None)

    threading.Thread(target=read, daemon=True).start()
    deadline, said = time.monotonic() + timeout, []
    while (left := deadline - time.monotonic()) > 0:
        try:
            line = lines.get(timeout=left)
        except queue.Empty:
            break
        if line is None:
            break
        said.append(line)
        found = re.search(r"WebDriver BiDi listening on (ws://\S+)", line)
        if found:
            return found.group(1)
    raise BidiError(f"Firefox did not start its BiDi listener: {''.join(said)[-2000:]}")
