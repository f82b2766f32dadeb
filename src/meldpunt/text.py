"""What text meldpunt accepts: names, one-line values and free text.

Text comes in through the API, the pages, the command line and imported files, and ends up in
the database and in pages and URLs. Some characters cannot make that trip: PostgreSQL cannot
store NUL at all, a lone surrogate (which a command line's undecodable bytes become) cannot be
encoded, and a name with ``/`` cannot be a path segment of the pages. Every face and every
importer refuses such text with the same rules, from this module, so that SQLite and PostgreSQL
behave alike and nothing unstorable reaches a shared transaction.

- **Free text** (an entry's note, an outcome's reason, a set's description): any printable
  text, with tabs and line breaks; other control characters (NUL, ESC, DEL, C1) and lone
  surrogates are refused.
- **One-line values** (a platform's ref, a URL, a report id, a category value): the same without
  tabs or line breaks.
- **Names** (sets, organisations, key labels): one line as well, and also no ``/`` or ``\\``,
  no ``..``, no Unicode line separators or direction overrides (which make a name look like
  another); surrounding spaces are dropped. A name is at most 200 characters.

The domain functions call ``check_text``/``check_name`` (and turn ``TextError`` into their own
``InvalidInput``); the API's schemas use the annotated types below, which give the same message
as a 422 answer.
"""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import AfterValidator, Field

__all__ = [
    "MAX_NAME",
    "FreeText",
    "NameText",
    "OneLine",
    "TextError",
    "check_name",
    "check_text",
    "could_be_name",
    "printable_line",
    "text_problem",
]

MAX_NAME = 200

# C0 controls but tab and line breaks, DEL, C1 controls, lone surrogates.
_NOT_IN_FREE_TEXT = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff]")
_NOT_IN_ONE_LINE = re.compile("[\x00-\x1f\x7f-\x9f\ud800-\udfff\u2028\u2029]")
_ASCII_NOT_IN_ONE_LINE = bytes(range(32)) + b"\x7f"
_ASCII_NOT_IN_FREE_TEXT = bytes(c for c in _ASCII_NOT_IN_ONE_LINE if c not in b"\t\n\r")
# What one-line values refuse, and bidirectional embeddings, overrides and isolates.
_NOT_IN_LABELS = re.compile(
    "[\x00-\x1f\x7f-\x9f\ud800-\udfff\u2028\u2029\u202a-\u202e\u2066-\u2069]"
)
# Line and paragraph separators, bidirectional embeddings, overrides and isolates.
_NOT_IN_NAMES = re.compile("[/\\\\\u2028\u2029\u202a-\u202e\u2066-\u2069]|\\.\\.")


class TextError(ValueError):
    """Text that meldpunt does not accept; the message says why."""


def _describe(found: str) -> str:
    if found == "\x00":
        return "a NUL character"
    if "\ud800" <= found <= "\udfff":
        return "an undecodable character"
    if found.isprintable():
        return f"'{found}'"
    return f"the character U+{ord(found):04X}"


def text_problem(value: str, *, multiline: bool = False) -> str | None:
    """Why ``value`` cannot be stored as text (free text when ``multiline``), or None."""
    if value.isascii():  # the usual case: one pass at C speed (regular expressions take 10x)
        controls = _ASCII_NOT_IN_FREE_TEXT if multiline else _ASCII_NOT_IN_ONE_LINE
        if len(value.encode("ascii").translate(None, controls)) == len(value):
            return None
    elif value.isprintable():
        return None
    bad = (_NOT_IN_FREE_TEXT if multiline else _NOT_IN_ONE_LINE).search(value)
    if bad is None:
        return None
    return f"contains {_describe(bad.group())} (control characters are not accepted)"


def check_text(value: str, what: str, *, max_length: int, multiline: bool = False) -> str:
    """``value`` unchanged, or TextError naming ``what`` and the problem."""
    if len(value) > max_length:
        raise TextError(f"{what} is longer than {max_length:,} characters")
    problem = text_problem(value, multiline=multiline)
    if problem is not None:
        raise TextError(f"{what} {problem}")
    return value


def check_name(value: str, what: str = "a name", *, max_length: int = MAX_NAME) -> str:
    """``value`` without surrounding spaces, or TextError: empty, too long, or with a character
    that names cannot have."""
    name = value.strip()
    if not name:
        raise TextError(f"{what} cannot be empty")
    check_text(name, what, max_length=max_length)
    bad = _NOT_IN_NAMES.search(name)
    if bad is not None:
        found = "'..'" if bad.group() == ".." else _describe(bad.group())
        raise TextError(f"{what} cannot contain {found} (names are used in addresses)")
    return name


def printable_line(value: str, *, max_length: int = MAX_NAME) -> str:
    """``value`` as a one-line label that can be stored and shown: every character one-line
    values refuse, and the direction overrides that make a label read as another, replaced by
    U+FFFD; cut to ``max_length``. For labels that only name something (an uploaded file's
    name), where refusing the thing for its label would be wrong."""
    return _NOT_IN_LABELS.sub("\ufffd", value[:max_length])


def could_be_name(value: str) -> bool:
    """Whether a looked-up name could exist; a name that could not is not looked up (the
    database could not even compare it)."""
    try:
        check_name(value)
    except TextError:
        return False
    return True


def _one_line(value: str) -> str:
    return check_text(value, "the value", max_length=len(value))


def _free_text(value: str) -> str:
    return check_text(value, "the text", max_length=len(value), multiline=True)


def _name(value: str) -> str:
    return check_name(value, "the name")


#: Types for pydantic models: combine with ``Field(max_length=...)`` for the length.
OneLine = Annotated[str, AfterValidator(_one_line)]
FreeText = Annotated[str, AfterValidator(_free_text)]
NameText = Annotated[
    str,
    Field(
        min_length=1,
        max_length=MAX_NAME,
        description="1 to 200 characters, without control "
        "characters, '/', '\\' or '..'; surrounding spaces are dropped",
    ),
    AfterValidator(_name),
]
