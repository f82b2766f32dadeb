"""One error base class: every room's errors know their HTTP status, and the API answers with it."""

from __future__ import annotations

import pickle

import pytest

from meldpunt import checks, errors, registry, signals
from meldpunt.api.errors import ApiError, describe
from meldpunt.signals.errors import CorruptImage, FileTooLarge, ImageTooLarge, NotAnImage


@pytest.mark.parametrize(
    ("error", "status", "code"),
    [
        (registry.NotFound("no set named 'x'"), 404, "not_found"),
        (checks.NotFound("no hit 7"), 404, "not_found"),
        (registry.InvalidInput("threshold must be 0..256"), 400, "invalid"),
        (checks.InvalidInput("unknown role 'boss'"), 400, "invalid"),
        (registry.FormatError("not a VICS file"), 400, "invalid"),
        (NotAnImage("not an image"), 415, "not_an_image"),
        (FileTooLarge("too big"), 413, "file_too_large"),
        (ImageTooLarge("too many pixels"), 413, "image_too_large"),
        (CorruptImage("truncated"), 400, "corrupt_image"),
        (signals.InvalidSignal("md5 must be 32 hex digits"), 400, "invalid_signal"),
        (ApiError(403, "forbidden", "this route is for admin keys"), 403, "forbidden"),
        (errors.Unavailable("the index is loading", retry_after=5), 503, "unavailable"),
    ],
)
def test_every_error_answers_its_own_status_and_code(error, status, code):
    assert isinstance(error, errors.MeldpuntError)
    assert error.status == status and error.code == code
    answer = describe(error)
    assert answer is not None
    assert answer[:2] == (status, {"error": {"code": code, "message": str(error)}})


def test_the_room_names_still_catch_what_they_did():
    with pytest.raises(registry.RegistryError):
        raise registry.NotFound("no set")
    with pytest.raises(LookupError):  # callers that catch the builtin kinds keep working
        raise checks.NotFound("no org")
    with pytest.raises(ValueError):
        raise registry.InvalidInput("bad")
    with pytest.raises(errors.NotFound):  # and so do callers that catch the common kind
        raise registry.NotFound("no set")
    assert not isinstance(checks.NotFound("x"), registry.RegistryError)


def test_retry_after_becomes_a_header():
    limited = errors.RateLimited("too many requests", retry_after=3)
    assert describe(limited) == (
        429,
        {"error": {"code": "rate_limited", "message": "too many requests"}},
        {"Retry-After": "3"},
    )


def test_one_raise_may_set_its_own_code():
    error = checks.InvalidInput("that hit was decided already", status=409, code="decided")
    assert (error.status, error.code) == (409, "decided")
    assert (checks.InvalidInput.status, checks.InvalidInput.code) == (400, "invalid")


def test_errors_cross_process_boundaries():
    # ``meldpunt hash --workers`` hands signal errors back from its worker processes
    error = pickle.loads(pickle.dumps(NotAnImage("photo.txt: not an image")))
    assert (type(error), str(error), error.status) == (NotAnImage, "photo.txt: not an image", 415)


def test_other_exceptions_are_not_described():
    assert describe(RuntimeError("a bug")) is None
