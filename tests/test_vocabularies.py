"""The vocabularies (set kinds, item statuses, organisation kinds, roles, outcomes, re-check
statuses, review resolutions) are enums of their domain room; the database's check constraints,
the API's schemas and the command line's choices all say the same words."""

from __future__ import annotations

from enum import StrEnum

import pytest
import typer

from meldpunt import checks, registry
from meldpunt.api.routes_admin import KeyIn, OrgIn, SetIn
from meldpunt.api.schemas import OutcomeIn
from meldpunt.authority import vocabulary as authority_words
from meldpunt.cli import app
from meldpunt.monitor import vocabulary as monitor_words
from meldpunt.reports import vocabulary as reports_words
from meldpunt.store import models
from meldpunt.takedown import vocabulary as takedown_words
from meldpunt.triage import vocabulary as triage_words

VOCABULARIES: list[tuple[type[StrEnum], tuple[str, ...]]] = [
    (registry.SetKind, models.SET_KINDS),
    (registry.SetState, models.SET_STATES),
    (registry.ItemStatus, models.ITEM_STATUSES),
    (checks.OrgKind, models.ORG_KINDS),
    (checks.Role, models.KEY_ROLES),
    (checks.Outcome, models.HIT_OUTCOMES),
    (checks.RecheckStatus, models.RECHECK_STATUSES),
    (checks.ReviewResolution, models.REVIEW_RESOLUTIONS),
    (reports_words.ReportKind, models.REPORT_KINDS),
    (reports_words.ReportSource, models.REPORT_SOURCES),
    (reports_words.ItemState, models.URL_STATES),
    (reports_words.Grade, models.GRADES),
    (reports_words.Media, models.MEDIA_KINDS),
    (takedown_words.ContactKind, models.CONTACT_KINDS),
    (takedown_words.NoticeKind, models.NOTICE_KINDS),
    (takedown_words.NoticeStatus, models.NOTICE_STATUSES),
    (authority_words.CaseState, models.CASE_STATES),
    (authority_words.CaseSource, models.CASE_SOURCES),
    (authority_words.OrderStatus, models.ORDER_STATUSES),
    (authority_words.ReviewOutcome, models.REVIEW_OUTCOMES),
    (monitor_words.Period, models.MONITOR_PERIODS),
    (triage_words.CaseState, models.TRIAGE_CASE_STATES),
    (triage_words.FileClass, models.TRIAGE_CLASSES),
    (triage_words.MediaKind, models.TRIAGE_KINDS),
    (triage_words.Decision, models.TRIAGE_DECISIONS),
]


@pytest.mark.parametrize(("vocabulary", "constraint"), VOCABULARIES)
def test_the_database_allows_exactly_the_domain_words(vocabulary, constraint):
    # a new word needs a migration of the check constraint as well as a new member
    assert tuple(vocabulary) == constraint


@pytest.mark.parametrize(("vocabulary", "constraint"), VOCABULARIES)
def test_a_member_written_by_name_is_still_the_word(vocabulary, constraint):
    # psycopg writes an Enum by its name, so name and value have to agree (a trailing
    # underscore marks a word that is a Python keyword, like ReportSource.import_)
    assert all(member.name.rstrip("_") == member.value for member in vocabulary)


def test_the_domain_checks_its_words_with_the_enums():
    assert tuple(checks.Role) == checks.ROLES and "analyst" in checks.ROLES
    assert checks.OUTCOMES == ("blocked", "removed", "reported", "false_positive", "other")


@pytest.mark.parametrize(
    ("model", "field", "vocabulary"),
    [
        (SetIn, "kind", registry.SetKind),
        (OrgIn, "kind", checks.OrgKind),
        (KeyIn, "role", checks.Role),
        (OutcomeIn, "outcome", checks.Outcome),
    ],
)
def test_the_api_schema_offers_the_domain_words(model, field, vocabulary):
    schema = model.model_json_schema()
    ref = schema["properties"][field].get("$ref", "")
    assert ref.endswith("/" + vocabulary.__name__)
    assert schema["$defs"][vocabulary.__name__]["enum"] == list(vocabulary)


def test_the_api_hands_the_routes_plain_words():
    body = OutcomeIn.model_validate({"outcome": "removed"})
    assert type(body.outcome) is str and body.outcome == "removed"
    with pytest.raises(ValueError, match="blocked"):
        OutcomeIn.model_validate({"outcome": "deleted"})


def _option_type(*path: str, option: str) -> object:
    command = typer.main.get_command(app)
    for name in path:
        command = command.commands[name]
    param = next(p for p in command.params if option in p.opts)
    return param.type_descriptor.annotation


@pytest.mark.parametrize(
    ("path", "option", "vocabulary"),
    [
        (("sets", "create"), "--kind", registry.SetKind),
        (("orgs", "create"), "--kind", checks.OrgKind),
        (("keys", "create"), "--role", checks.Role),
    ],
)
def test_the_command_line_offers_the_domain_words(path, option, vocabulary):
    assert _option_type(*path, option=option) is vocabulary
