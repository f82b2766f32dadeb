"""The safe fetcher against real HTTP servers on 127.0.0.2 and 127.0.0.3 (never anything
outside loopback), and its address rules as plain unit tests."""

from __future__ import annotations

import dataclasses
import hashlib
import ipaddress
import socket
import ssl
from datetime import UTC, datetime, timedelta

import pytest

from loopback_web import drip, send, serve, slow
from meldpunt.clock import FrozenClock, use_clock
from meldpunt.reports import fetcher
from meldpunt.reports.fetcher import (
    FetchFailed,
    FetchPolicy,
    FetchRefused,
    FetchTimedOut,
    FetchUnresolvable,
    check_address,
    fetch,
)

LOOPBACK = FetchPolicy(allow_networks=(ipaddress.ip_network("127.0.0.0/8"),), timeout_seconds=2)
ONLY_2 = FetchPolicy(allow_networks=(ipaddress.ip_network("127.0.0.2/32"),), timeout_seconds=2)
BIG = b"x" * 300_000


@pytest.fixture
def other():
    with serve("127.0.0.3", {"/there": lambda h: send(h, 200, b"other")}) as (base, seen):
        yield base, seen


@pytest.fixture
def site(other):
    other_base, _ = other
    routes = {
        "/ok": lambda h: send(h, 200, b"hello", Content_Type="text/plain"),
        "/gone": lambda h: send(h, 410),
        "/error": lambda h: send(h, 503),
        "/moved": lambda h: send(h, 301, Location="/ok"),
        "/away": lambda h: send(h, 302, Location=f"{other_base}/there"),
        "/inside": lambda h: send(h, 302, Location="http://10.1.2.3/"),
        "/loop": lambda h: send(h, 302, Location="/loop"),
        "/big": lambda h: send(h, 200, BIG),
        "/slow": slow(1.5),
        "/drip": drip(0.1, 100),
        "/drip-headers": drip(0.1, 100, headers_too=True),
    }
    with serve("127.0.0.2", routes) as (base, seen):
        yield base, seen


def test_a_page_is_fetched_with_its_hash(site):
    base, seen = site
    result = fetch(f"{base}/ok", LOOPBACK)
    assert (result.status, result.content_type, result.size) == (200, "text/plain", 5)
    assert result.sha256 == hashlib.sha256(b"hello").hexdigest()
    assert result.error is None and not result.truncated
    assert seen[-1]["user-agent"].startswith("meldpunt/")


def test_missing_and_gone_pages_give_their_status(site):
    base, _ = site
    assert fetch(f"{base}/nothing", LOOPBACK).status == 404
    assert fetch(f"{base}/gone", LOOPBACK).status == 410
    assert fetch(f"{base}/error", LOOPBACK).status == 503


def test_redirects_are_followed_and_checked_again(site):
    base, _ = site
    result = fetch(f"{base}/moved", LOOPBACK)
    assert (result.status, result.final_url) == (200, f"{base}/ok")
    assert fetch(f"{base}/away", LOOPBACK).final_url.endswith("/there")
    with pytest.raises(FetchRefused, match=r"127\.0\.0\.3 is an address inside the network"):
        fetch(f"{base}/away", ONLY_2)  # 127.0.0.3 is not allowed
    with pytest.raises(FetchRefused, match=r"10\.1\.2\.3 is an address inside the network"):
        fetch(f"{base}/inside", LOOPBACK)
    with pytest.raises(FetchFailed, match="more than 3 redirects"):
        fetch(f"{base}/loop", LOOPBACK)


def test_the_body_is_read_up_to_max_bytes(site):
    base, _ = site
    small = FetchPolicy(allow_networks=LOOPBACK.allow_networks, max_bytes=1000)
    result = fetch(f"{base}/big", small)
    assert (result.size, result.truncated) == (1000, True)
    assert result.sha256 == hashlib.sha256(BIG[:1000]).hexdigest()
    assert fetch(f"{base}/big", LOOPBACK).size == len(BIG)


def test_a_slow_answer_times_out(site):
    base, _ = site
    quick = FetchPolicy(allow_networks=LOOPBACK.allow_networks, timeout_seconds=0.3)
    with pytest.raises(FetchFailed, match="timed out"):
        fetch(f"{base}/slow", quick)


def test_a_server_that_drips_is_cut_off_at_the_fetchs_deadline(site):
    """Each byte comes well within the per-read timeout; the whole answer would take ten
    seconds (without the deadline the fetch succeeds, late)."""
    base, _ = site
    patient = FetchPolicy(allow_networks=LOOPBACK.allow_networks, timeout_seconds=2,
                          total_seconds=0.8)  # fmt: skip
    for path in ("/drip", "/drip-headers"):
        with pytest.raises(FetchTimedOut, match=r"longer than 0\.8 s \(fetch_total_seconds\)"):
            fetch(f"{base}{path}", patient)
    assert issubclass(FetchTimedOut, FetchFailed)  # worth trying later, as other timeouts


def test_the_deadline_follows_the_clock(site, monkeypatch):
    """The deadline is measured with meldpunt's clock: a fetch during which a controlled clock
    passes the deadline fails, although the server answered at once."""
    base, _ = site
    frozen = FrozenClock(datetime(2026, 1, 1, tzinfo=UTC))
    real_connect = fetcher._connect

    def connect_while_time_passes(*args, **kwargs):
        sock = real_connect(*args, **kwargs)
        frozen.advance(timedelta(minutes=2))
        return sock

    monkeypatch.setattr(fetcher, "_connect", connect_while_time_passes)
    with use_clock(frozen), pytest.raises(FetchTimedOut):
        fetch(f"{base}/ok", LOOPBACK)
    monkeypatch.undo()
    with use_clock(frozen):
        assert fetch(f"{base}/ok", LOOPBACK).status == 200


def test_loopback_is_refused_unless_allowed(site):
    base, _ = site
    with pytest.raises(FetchRefused, match=r"127\.0\.0\.1 is an address inside the network"):
        fetch("http://127.0.0.1:9/", FetchPolicy())
    with pytest.raises(FetchRefused, match="127.0.0.2"):
        fetch(f"{base}/ok", FetchPolicy())


def test_only_http_and_https(site):
    for url in ("ftp://127.0.0.2/x", "file:///etc/passwd", "gopher://127.0.0.2/", "//x/y"):
        with pytest.raises(FetchRefused):
            fetch(url, LOOPBACK)


def test_the_connection_goes_to_the_checked_address_with_the_original_host(site, monkeypatch):
    base, seen = site
    port = int(base.rsplit(":", 1)[1])
    calls = []

    def fake_resolve(host, port_):
        calls.append(host)
        return {"content.example": ["127.0.0.2"], "evil.example": ["127.0.0.2", "10.0.0.7"]}[host]

    monkeypatch.setattr(fetcher, "resolve", fake_resolve)
    assert fetch(f"http://content.example:{port}/ok", LOOPBACK).status == 200
    assert seen[-1]["host"] == f"content.example:{port}"
    assert calls == ["content.example"]  # one lookup, no second one by a library
    # Every address must pass, not just the first.
    with pytest.raises(FetchRefused, match=r"evil\.example resolves to 10\.0\.0\.7"):
        fetch(f"http://evil.example:{port}/ok", LOOPBACK)


def test_a_name_that_does_not_resolve_is_unresolvable(monkeypatch):
    def no_such_name(host, port, type=0):
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    monkeypatch.setattr(socket, "getaddrinfo", no_such_name)
    with pytest.raises(FetchUnresolvable, match="does not resolve"):
        fetch("http://gone.example/x", LOOPBACK)


@pytest.mark.parametrize(
    "address",
    [
        "10.1.2.3",
        "172.16.0.1",
        "192.168.1.1",
        "127.0.0.1",
        "169.254.169.254",
        "100.64.0.1",
        "0.0.0.0",
        "224.0.0.1",
        "240.0.0.1",
        "255.255.255.255",
        "::1",
        "::",
        "fe80::1",
        "fe80::1%eth0",
        "fc00::1",
        "ff02::1",
        "::ffff:10.0.0.1",
        "::ffff:127.0.0.1",
        "2002:0a00:0001::1",  # 6to4 around 10.0.0.1
    ],
)
def test_addresses_inside_the_network_are_refused(address):
    with pytest.raises(FetchRefused, match="an address inside the network"):
        check_address(address, FetchPolicy())


@pytest.mark.parametrize("address", ["93.184.215.14", "2606:2800:21f:cb07:6820:80da:af6b:8b2c"])
def test_public_addresses_pass(address):
    assert str(check_address(address, FetchPolicy())) == address


def test_allowed_networks_let_internal_addresses_through():
    policy = FetchPolicy(allow_networks=(ipaddress.ip_network("10.0.0.0/8"),))
    assert str(check_address("10.1.2.3", policy)) == "10.1.2.3"
    assert check_address("::ffff:10.1.2.3", policy).version == 6
    with pytest.raises(FetchRefused):
        check_address("192.168.0.1", policy)


def test_the_policy_follows_the_settings(settings, monkeypatch):
    from meldpunt.config import get_settings, reset_settings

    monkeypatch.setenv("MELDPUNT_FETCH_ALLOW_NETWORKS", '["127.0.0.0/8"]')
    monkeypatch.setenv("MELDPUNT_FETCH_MAX_BYTES", "1234")
    monkeypatch.setenv("MELDPUNT_FETCH_CA_FILE", "/etc/meldpunt/ca.pem")
    monkeypatch.setenv("MELDPUNT_FETCH_TOTAL_SECONDS", "30")
    reset_settings()
    policy = FetchPolicy.from_settings(get_settings())
    assert policy.total_seconds == 30
    assert policy.allow_networks == (ipaddress.ip_network("127.0.0.0/8"),)
    assert policy.max_bytes == 1234 and policy.ca_file == "/etc/meldpunt/ca.pem"


@pytest.fixture
def tls_site(tmp_path):
    """An https hoster on 127.0.0.2 whose certificate (from a test CA) names content.example."""
    import trustme

    ca = trustme.CA()
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("content.example").configure_cert(context)
    ca_file = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    with serve("127.0.0.2", {"/ok": lambda h: send(h, 200, b"secure")}, tls=context) as (base, _):
        yield int(base.rsplit(":", 1)[1]), str(ca_file)


def test_https_checks_the_certificate_against_the_name_in_the_url(tls_site, monkeypatch):
    port, ca_file = tls_site
    names = {"content.example": ["127.0.0.2"], "other.example": ["127.0.0.2"]}
    monkeypatch.setattr(fetcher, "resolve", lambda host, port_: names[host])
    trusting = dataclasses.replace(LOOPBACK, ca_file=ca_file)
    # connected to the checked address, yet the certificate must name the host of the URL
    found = fetch(f"https://content.example:{port}/ok", trusting)
    assert found.status == 200 and found.sha256 == hashlib.sha256(b"secure").hexdigest()
    with pytest.raises(FetchFailed, match="other.example"):
        fetch(f"https://other.example:{port}/ok", trusting)
    # a certificate authority the policy does not trust: refused, not fetched
    with pytest.raises(FetchFailed, match="certificate verify failed"):
        fetch(f"https://content.example:{port}/ok", LOOPBACK)


def test_the_body_comes_back_in_memory(site):
    base, _ = site
    assert fetch(f"{base}/ok", LOOPBACK).body == b"hello"
    big = fetch(f"{base}/big", dataclasses.replace(LOOPBACK, max_bytes=1000))
    assert big.body == BIG[:1000] and big.truncated
    assert "hello" not in repr(fetch(f"{base}/ok", LOOPBACK))  # bytes never end up in logs


def test_a_name_table_answers_before_dns_and_follows_its_file(site, tmp_path, monkeypatch):
    base, seen = site
    port = int(base.rsplit(":", 1)[1])

    def no_dns(host, port_):
        raise FetchUnresolvable(f"{host} does not resolve")

    monkeypatch.setattr(fetcher, "resolve", no_dns)
    table = tmp_path / "hosts"
    table.write_text("# the simulation's names\n127.0.0.2 site.sim.test alias.sim.test\nnonsense\n")
    policy = dataclasses.replace(LOOPBACK, names=fetcher.NameTable(table))
    assert fetch(f"http://site.sim.test:{port}/ok", policy).body == b"hello"
    assert seen[-1]["host"] == f"site.sim.test:{port}"
    assert fetcher.resolve_host("ALIAS.sim.test.", port, policy) == ["127.0.0.2"]
    # The name moves to another address, then goes: the table is read again each time.
    table.write_text("127.0.0.3 site.sim.test\n")
    assert fetcher.resolve_host("site.sim.test", port, policy) == ["127.0.0.3"]
    table.write_text("")
    with pytest.raises(FetchUnresolvable):
        fetch(f"http://site.sim.test:{port}/ok", policy)
    table.unlink()  # a missing table is an empty one
    assert fetcher.resolve_host("127.0.0.9", port, policy) == ["127.0.0.9"]


def test_the_policy_reads_the_name_table_setting(settings, monkeypatch, tmp_path):
    from meldpunt.config import load_settings

    table = tmp_path / "hosts"
    table.write_text("127.0.0.2 a.sim.test\n")
    policy = FetchPolicy.from_settings(load_settings(resolver_hosts_file=str(table)))
    assert policy.names is not None and policy.names.lookup("a.sim.test") == ["127.0.0.2"]
    assert FetchPolicy.from_settings(load_settings()).names is None
