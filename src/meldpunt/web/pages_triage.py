"""Triage cases (roles ``analyst`` and ``admin``): ``/ui/triage`` lists the cases with their
counts, ``/ui/triage/{id}`` a case's summary and its groups of new material, largest first, with
the reviewers' decisions and the form to record one. No page shows media: a group is named by its
representative's path, which the reviewer opens in their own forensic viewer."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Form, Path, Query, Request, Response
from fastapi.responses import HTMLResponse
from sqlalchemy import select

from meldpunt.api.state import service_of
from meldpunt.checks import Role
from meldpunt.registry import CODES
from meldpunt.store.models import TriageGroup
from meldpunt.triage import decide
from meldpunt.triage.cases import class_counts, get_case_by_id, list_cases
from meldpunt.triage.vocabulary import Decision

from .auth import CsrfChecked, actor, role
from .render import PageRoute, done, page
from .sessions import WebSession

router = APIRouter(route_class=PageRoute, include_in_schema=False)

Reviewer = Annotated[WebSession, Depends(role(Role.analyst, Role.admin))]
RowId = Annotated[int, Path(ge=1, le=2**63 - 1)]
PAGE = 200


@router.get("/ui/triage", response_class=HTMLResponse)
def cases_page(request: Request, session: Reviewer) -> Response:
    with service_of(request).sessions() as db:
        rows = [(case, class_counts(db, case.id)) for case in list_cases(db)[:PAGE]]
    return page(request, "triage.html", cases=rows)


@router.get("/ui/triage/{case_id}", response_class=HTMLResponse)
def case_page(
    request: Request,
    session: Reviewer,
    case_id: RowId,
    offset: Annotated[int, Query(ge=0, le=10**9)] = 0,
) -> Response:
    with service_of(request).sessions() as db:
        case = get_case_by_id(db, case_id)
        counts = class_counts(db, case.id)
        groups = list(db.scalars(
            select(TriageGroup).where(TriageGroup.case_id == case.id)
            .order_by(TriageGroup.files.desc(), TriageGroup.number).offset(offset).limit(PAGE)
        ))  # fmt: skip
        total = len(list(db.scalars(select(TriageGroup.id).where(TriageGroup.case_id == case.id))))
    categories = [c for c in CODES.values() if c.illegal]
    return page(request, "triage_case.html", case=case, counts=counts, groups=groups,
                total=total, offset=offset, page_size=PAGE, categories=categories)  # fmt: skip


@router.post("/ui/triage/{case_id}/groups/{number}", response_class=HTMLResponse,
             dependencies=[CsrfChecked])  # fmt: skip
def decide_group(
    request: Request,
    session: Reviewer,
    case_id: RowId,
    number: Annotated[int, Path(ge=1, le=2**31 - 1)],
    decision: Annotated[Decision, Form()],
    category: Annotated[str, Form(max_length=40)] = "",
) -> Response:
    with service_of(request).sessions() as db:
        case = get_case_by_id(db, case_id)
        decide(db, case.name, number, decision, category=category or None, actor=actor(session))
        db.commit()
    session.flash(f"Group {number} decided: {decision.replace('_', ' ')}.")
    return done(request, f"/ui/triage/{case_id}")
