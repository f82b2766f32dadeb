"""Signal types and exact digests."""

from __future__ import annotations

import hashlib
import io
import secrets

import pytest

from meldpunt.signals import InvalidSignal, digest_bytes, digest_stream
from meldpunt.signals import types as signal_types


def test_builtin_types_validate_and_normalise():
    value = secrets.token_hex(32)
    assert signal_types.get("PDQ").normalize(f"  {value.upper()} ") == value
    assert signal_types.get("sha-256").name == "sha256"
    with pytest.raises(InvalidSignal, match="64 hex digits"):
        signal_types.get("pdq").normalize(value[:-1])
    with pytest.raises(InvalidSignal, match="hexadecimal"):
        signal_types.get("md5").normalize("z" * 32)
    with pytest.raises(InvalidSignal, match="unknown signal type"):
        signal_types.get("photodna-v9")


def test_pdq_distance_is_hamming_and_exact_types_are_equal_or_not():
    a = "0" * 64
    b = "f" + "0" * 62 + "1"
    assert signal_types.get("pdq").distance(a, b) == 5
    assert signal_types.get("md5").distance("A" * 32, "a" * 32) == 0
    assert signal_types.get("md5").distance("a" * 32, "b" * 32) == 1


def test_parse_accepts_the_field_formats():
    value = secrets.token_hex(16)
    assert signal_types.parse(f"md5:{value}") == ("md5", value)
    assert signal_types.parse(f"MD5 {value.upper()}") == ("md5", value)
    with pytest.raises(InvalidSignal):
        signal_types.parse(value)


def test_plugins_register_new_types_once():
    class Fancy(signal_types.SignalType):
        name = "fancy_test_type"
        perceptual = True

    signal_types.register(Fancy)
    signal_types.register(Fancy)  # idempotent for the same class
    assert signal_types.get("fancy_test_type") is Fancy
    assert "fancy_test_type" in signal_types.names()

    class Impostor(signal_types.SignalType):
        name = "fancy_test_type"

    with pytest.raises(ValueError, match="already registered"):
        signal_types.register(Impostor)


@pytest.mark.parametrize("size", [0, 1, 1 << 20, (1 << 20) + 17, 5_000_000])
def test_digests_match_hashlib_streamed_or_not(size):
    data = secrets.token_bytes(size)
    expected = (hashlib.md5(data).hexdigest(), hashlib.sha1(data).hexdigest(),
                hashlib.sha256(data).hexdigest(), size)  # fmt: skip
    for digests in (digest_bytes(data), digest_stream(io.BytesIO(data), chunk_bytes=65536)):
        assert (digests.md5, digests.sha1, digests.sha256, digests.size) == expected
