"""Checking uploaded files: the multipart form, one item per file, and pictures decoded within
the process's memory budget.

A file that cannot be checked in full fails only its own item, as an item of a JSON batch does:
a file over ``max_upload_bytes`` is not read (``file_too_large``); a file that is not a picture,
is damaged, or has more pixels than the service decodes is still checked by its exact digests,
and its item says why it has no PDQ hash (``not_an_image``, ``corrupt_image``,
``image_too_large``). Only a request as a whole that is not a check (no file, too many refs)
or that arrives while the decoding memory is lent out (503, ``busy``) is refused.
"""

from __future__ import annotations

from dataclasses import dataclass

from fastapi import Request
from starlette.datastructures import UploadFile

from meldpunt.registry.matching import Query as MatchQuery
from meldpunt.registry.matching import picture_query
from meldpunt.signals import (
    FileTooLarge,
)

from .errors import ApiError, ItemError
from .schemas import MAX_REF
from .state import ServiceState, service_of


@dataclass(frozen=True)
class Upload:
    """One uploaded file: its name and the spooled file the form parser wrote it to."""

    name: str
    file: UploadFile


@dataclass(frozen=True)
class FileCheck:
    """What a file gives to check: a query (None when it gave nothing to match) and, when it
    could not be checked in full, why."""

    query: MatchQuery | None
    problem: ItemError | None

    def as_item(self) -> tuple[MatchQuery | ItemError, ItemError | None]:
        """What ``run_checks`` takes for this file: the query (or the item's error) and, when
        the query is checked only in part, why."""
        if self.query is None:
            assert self.problem is not None
            return self.problem, None
        if self.problem is None:
            return self.query, None
        message = f"{self.problem.message}; checked by its exact digests only"
        return self.query, ItemError(self.problem.code, message)


async def read_uploads(request: Request) -> tuple[list[Upload], list[str | None]]:
    """The files of a multipart check and their refs (matched in order; missing ones None).
    The files stay in the form's spooled temporary files until they are checked, one by one."""
    settings = service_of(request).settings
    form = await request.form(max_files=settings.max_upload_files)
    uploads: list[Upload] = []
    refs: list[str | None] = []
    for _, value in form.multi_items():
        if isinstance(value, str):
            if len(value) > MAX_REF:
                raise ApiError(422, "invalid_request", f"refs are limited to {MAX_REF} characters")
            refs.append(value)
        else:
            uploads.append(Upload(value.filename or "upload", value))
    if not uploads:
        raise ApiError(422, "invalid_request", "multipart checks need at least one file")
    if len(refs) > len(uploads):
        raise ApiError(422, "invalid_request", f"{len(refs)} ref fields for {len(uploads)} files")
    return uploads, refs + [None] * (len(uploads) - len(refs))


def check_file(state: ServiceState, upload: Upload) -> FileCheck:
    """Digests and PDQ of one uploaded file (blocking: run it in a worker thread)."""
    options = state.settings.hash_options()
    limit = options.limits.max_bytes
    upload.file.file.seek(0)
    data = upload.file.file.read(limit + 1)
    if len(data) > limit:
        message = f"{upload.name}: files are limited to {limit:,} bytes"
        return FileCheck(None, ItemError(FileTooLarge.code, message, FileTooLarge.status))
    # no PDQ hash: the digests can still match
    query, error = picture_query(data, options, decode=state.decode_budget.pdq_signal)
    if error is None:
        return FileCheck(query, None)
    return FileCheck(query, ItemError(error.code, f"{upload.name}: {error}", error.status))


def check_files(state: ServiceState, uploads: list[Upload]) -> list[FileCheck]:
    """The files of one request, one after another: a request holds one picture's decoding
    memory at a time, however many files it carries."""
    return [check_file(state, upload) for upload in uploads]
