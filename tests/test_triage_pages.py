"""The triage pages: who may see them (the roles matrix), a case's groups listed without media,
a decision recorded through the form, hostile input refused (SQLite and PostgreSQL)."""

from __future__ import annotations

import re

from sqlalchemy.orm import sessionmaker

from meldpunt.config import get_settings
from meldpunt.store import make_engine
from meldpunt.triage import LocalHasher, plan_from, rule_from, run_case
from meldpunt.triage.cases import get_case, groups_of
from service import running
from triage_support import jpeg, pattern, png
from web_support import csrf_of, sign_in

# page -> the roles that may open it
PAGES = {"/ui/triage": {"analyst", "admin"}, "/ui/triage/{case}": {"analyst", "admin"}}
ROLES = ("platform", "analyst", "admin")


def _case(db_url, tmp_path):
    root = tmp_path / "seized"
    root.mkdir()
    for i in range(3):
        (root / f"p{i}.png").write_bytes(png(pattern(40 + i)))
    (root / "p0-copy.jpg").write_bytes(jpeg(pattern(40), quality=60))
    settings = get_settings()
    engine = make_engine(db_url)
    run_case("seized <b>phone", [root], plan=plan_from(settings), rule=rule_from(settings),
             hasher=LocalHasher(1), bind=sessionmaker(engine))  # fmt: skip
    with sessionmaker(engine)() as session:
        case = get_case(session, "seized <b>phone")
        return case.id, {g.number: g.files for g in groups_of(session, case.id)}


def test_the_triage_pages_roles_groups_and_decisions(db_url, settings, tmp_path):
    with running(db_url, run_worker=False) as world:
        case_id, groups = _case(db_url, tmp_path)
        assert sorted(groups.values()) == [1, 1, 2]
        for role in ROLES:
            with sign_in(world, role) as client:
                for path, allowed in PAGES.items():
                    answer = client.get(path.format(case=case_id))
                    assert answer.status_code == (200 if role in allowed else 403), (role, path)
        with world.client(None, follow_redirects=False) as anonymous:
            assert "/ui/sign-in" in anonymous.get("/ui/triage").headers["location"]
        with sign_in(world, "analyst") as client:
            listing = client.get("/ui/triage")
            assert 'href="/ui/triage"' in listing.text  # in the navigation
            assert "seized &lt;b&gt;phone" in listing.text  # escaped, never markup
            shown = client.get(f"/ui/triage/{case_id}")
            assert re.search(r"<code>seized/p\d[^<]*</code>", shown.text)  # a representative
            assert "<img" not in shown.text
            largest = max(groups, key=groups.get)
            csrf = csrf_of(shown.text)
            path = f"/ui/triage/{case_id}/groups/{largest}"
            decided = client.post(path, data={"csrf": csrf, "decision": "illegal",
                                              "category": "csam_baseline"})  # fmt: skip
            assert decided.status_code == 303, decided.text
            assert "illegal (csam_baseline)" in client.get(f"/ui/triage/{case_id}").text
            forged = client.post(path, data={"csrf": "x", "decision": "illegal"})
            assert forged.status_code == 403
            no_category = client.post(path, data={"csrf": csrf, "decision": "illegal"})
            assert no_category.status_code == 400 and "needs a category" in no_category.text
            nul = client.post(path, data={"csrf": csrf, "decision": "illegal",
                                          "category": "csam\x00"})  # fmt: skip
            assert nul.status_code == 400
            wrong = client.post(path, data={"csrf": csrf, "decision": "maybe"})
            assert wrong.status_code in (400, 422)
            assert client.get("/ui/triage/999999").status_code == 404
            missing = client.post(f"/ui/triage/{case_id}/groups/99",
                                  data={"csrf": csrf, "decision": "not_illegal"})  # fmt: skip
            assert missing.status_code == 404
        with sign_in(world, "platform") as platform:
            refused = platform.post(path, data={"csrf": csrf, "decision": "not_illegal"})
            assert refused.status_code == 403
