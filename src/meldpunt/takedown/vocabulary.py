"""Notice-and-takedown vocabularies: kinds of abuse contact, kinds of notice and where a notice
stands. ``store/models.py`` keeps the words again for its check constraints."""

from __future__ import annotations

from enum import StrEnum

__all__ = [
    "CONTACT_KINDS",
    "NOTICE_KINDS",
    "NOTICE_STATUSES",
    "ContactKind",
    "NoticeKind",
    "NoticeStatus",
]


class ContactKind(StrEnum):
    hoster = "hoster"  # a hoster's or network owner's abuse desk
    police = "police"  # told first when an analyst grades "first police"


class NoticeKind(StrEnum):
    notice = "notice"  # the first notice of its items
    renotice = "renotice"  # 24 hours later, still online
    police = "police"  # to a police contact, before any notice to the hoster


class NoticeStatus(StrEnum):
    open = "open"  # collecting items until its due time (the contact's grouping window)
    sent = "sent"  # the relay accepted it
    failed = "failed"  # every attempt failed; an analyst looks


CONTACT_KINDS: tuple[str, ...] = tuple(ContactKind)
NOTICE_KINDS: tuple[str, ...] = tuple(NoticeKind)
NOTICE_STATUSES: tuple[str, ...] = tuple(NoticeStatus)
