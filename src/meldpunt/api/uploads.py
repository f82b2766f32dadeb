"""Uploaded files: the multipart forms of checks and of pictures added to a set, read one file
at a time; checks give one item per file, and pictures are decoded within the process's memory
budget.

A file that cannot be checked in full fails only its own item, as an item of a JSON batch does:
a file over ``max_upload_bytes`` is not read (``file_too_large``); a file that is not a picture,
is damaged, or has more pixels than the service decodes is still checked by its exact digests,
and its item says why it has no PDQ hash (``not_an_image``, ``corrupt_image``,
``image_too_large``). Only a request as a whole that is not a check (no file, too many refs)
or that arrives while the decoding memory is lent out (503, ``busy``) is refused.

Pictures added to a set (the API's ``POST /v1/sets/{name}/pictures`` and the set page's form)
come through ``read_picture_form`` and ``read_pictures``: at most ``max_upload_files`` files,
each at most ``max_upload_bytes`` (a larger one is that picture's ``file_too_large``, unread),
and one optional category, checked before any picture is decoded.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from fastapi import Request
from starlette.datastructures import FormData, UploadFile
from starlette.exceptions import HTTPException

from meldpunt.registry import InvalidInput
from meldpunt.registry.matching import Query as MatchQuery
from meldpunt.registry.matching import picture_query
from meldpunt.registry.pictures import PictureOutcome, add_pictures, check_category, picture_label
from meldpunt.signals import FileTooLarge, SignalError

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


#: The longest text field of an upload's form (a ref, a category, a page's CSRF token).
MAX_FIELD_BYTES = 64 * 1024


async def read_form(request: Request, *, max_fields: int | None = None) -> FormData:
    """The request's multipart form, with at most ``max_upload_files`` files (each kept in memory
    up to 1 MiB, the rest spooled to a temporary file as it arrives; the body as a whole has
    ``max_multipart_bytes``) and at most ``max_fields`` text fields (default: one per file) of
    at most 64 KiB. A form the parser refuses (too many files or fields, a field too long, a
    broken body) is a 400 in JSON."""
    settings = service_of(request).settings
    fields = settings.max_upload_files if max_fields is None else max_fields
    try:
        form = await request.form(max_files=settings.max_upload_files, max_fields=fields,
                                  max_part_size=MAX_FIELD_BYTES)  # fmt: skip
    except HTTPException as exc:  # Starlette's parser: too many files or fields, a bad body
        raise ApiError(400, "invalid_form", str(exc.detail)) from None
    # A form parsed earlier (the pages' CSRF check reads it first) had limits of its own.
    files = sum(1 for _, value in form.multi_items() if not isinstance(value, str))
    if files > settings.max_upload_files:
        limit = settings.max_upload_files
        raise ApiError(400, "invalid_form", f"too many files: at most {limit} a request")
    return form


def read_upload(file: UploadFile, limit: int) -> bytes | None:
    """An uploaded file's bytes from its spooled file, or None when it is over ``limit`` (no
    more than ``limit + 1`` bytes are read into memory)."""
    file.file.seek(0)
    data = file.file.read(limit + 1)
    return None if len(data) > limit else data


async def read_uploads(request: Request) -> tuple[list[Upload], list[str | None]]:
    """The files of a multipart check and their refs (matched in order; missing ones None).
    The files stay in the form's spooled temporary files until they are checked, one by one."""
    form = await read_form(request)
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
    data = read_upload(upload.file, limit)
    if data is None:
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


@dataclass(frozen=True)
class PictureForm:
    """A form that adds pictures to a set: its files (still spooled, read one at a time by
    ``read_pictures``) and the category they are added with (None: the set's default)."""

    files: list[UploadFile]
    category: str | None


async def read_picture_form(request: Request) -> PictureForm:
    """The files and the category of a form that adds pictures to a set (``file`` fields, one
    optional ``category``; a page's form carries its ``csrf`` too). Refused as a whole (JSON
    and pages alike): no file, too many, a category that is not one line of at most 100
    characters, or given twice."""
    form = await read_form(request, max_fields=8)
    files = [value for _, value in form.multi_items() if not isinstance(value, str)]
    if not files:
        raise ApiError(422, "invalid_request", "add pictures as one or more 'file' fields")
    given = form.getlist("category")
    if len(given) > 1 or not all(isinstance(value, str) for value in given):
        raise ApiError(422, "invalid_request", "category is one text field")
    try:
        category = check_category(str(given[0])) if given else None
    except InvalidInput as exc:
        raise ApiError(422, "invalid_request", str(exc)) from None
    return PictureForm(files, category)


def read_pictures(
    files: Sequence[UploadFile], limit: int
) -> Iterator[tuple[str, bytes | SignalError]]:
    """The pictures of a form as ``registry.pictures.add_pictures`` takes them, one in memory at
    a time: (file name, bytes), or the ``FileTooLarge`` of a file over ``limit``, unread."""
    for upload in files:
        label = picture_label(upload.filename or "upload")
        data = read_upload(upload, limit)
        if data is None:
            yield label, FileTooLarge(f"{label}: files are limited to {limit:,} bytes")
        else:
            yield label, data


def add_picture_form(
    state: ServiceState, name: str, form: PictureForm, actor: str
) -> list[PictureOutcome]:
    """Entries in set ``name`` from the form's pictures, each decoded within the process's
    decoding memory (503 ``busy`` when none is free: nothing is written then), all written in
    one transaction. Blocking: run it in a worker thread."""
    options = state.settings.hash_options()
    pictures = read_pictures(form.files, options.limits.max_bytes)
    with state.sessions() as session:
        outcomes = add_pictures(session, name, pictures, options, category=form.category,
                                actor=actor, decode=state.decode_budget.pdq_signal)  # fmt: skip
        session.commit()
    return outcomes
