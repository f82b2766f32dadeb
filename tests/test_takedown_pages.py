"""The attribution pages (directory, contact needed, a hoster's items, forward records) and
``GET /v1/forwards``, on a running service, SQLite and PostgreSQL."""

from __future__ import annotations

import csv
import io
import json

import pytest

from meldpunt.reports import fetcher, items
from meldpunt.store.models import UrlItem
from meldpunt.takedown import asn, directory
from meldpunt.takedown.attribution import Location, apply_attribution, attribute
from meldpunt.takedown.directory import Directory
from service import running
from takedown_support import TABLE, no_dns, ready_item
from web_support import csrf_of, sign_in


@pytest.fixture(autouse=True)
def dns(monkeypatch):
    monkeypatch.setattr(fetcher, "resolve", no_dns)


def _seed(world) -> dict[str, int]:
    """A forwarded item, one waiting for a contact and one attributed, as the worker leaves
    them."""
    with world.session() as session:
        asn.load_table(session, TABLE.splitlines(), "csv")
        directory.add_contact(session, "Dijk", actor="t", asn=64501, email="abuse@dijk.test")
        places = {
            "abroad": ("http://rhein.test/a.jpg", Location(("127.2.0.5",), "127.2.0.5", 64502,
                                                            "Rhein Server GmbH", "DE")),
            "waiting": ("http://dijk.test/b.jpg", Location(("127.1.0.5",), "127.1.0.5", 64501,
                                                           "Dijk Cloud B.V.", "NL")),
        }  # fmt: skip
        ids = {}
        for key, (url, location) in places.items():
            row = ready_item(session, url)
            host = row.host
            found = Directory.load(session, [host], [location.asn], [location.org])
            outcome = attribute(host, location, found, "NL")
            note = apply_attribution(session, row, location, outcome, actor="worker",
                                     check_minutes=60)  # fmt: skip
            items.note(session, [note])
            ids[key] = row.id
        session.commit()
    return ids


def test_pages_of_attribution(db_url):
    with running(db_url) as world, sign_in(world, "analyst") as client:
        ids = _seed(world)
        for path in ("/ui/contacts", "/ui/contact-needed", "/ui/hosters/64501",
                     "/ui/hosters/64502?state=forwarded", "/ui/forwards",
                     "/ui/forwards?since=2000-01-01"):  # fmt: skip
            response = client.get(path)
            assert response.status_code == 200, (path, response.text[:500])
            assert "</html>" in response.text and "<img" not in response.text, path
        queue = client.get("/ui/contact-needed").text
        assert "http://dijk.test/b.jpg" in queue and "not approved" in queue
        assert "Rhein Server GmbH" in client.get("/ui/forwards").text
        assert "http://dijk.test/b.jpg" in client.get("/ui/hosters/64501").text
        assert client.get("/ui/hosters/64501?state=bogus").status_code == 400
        assert client.get("/ui/forwards?since=soon").status_code == 400

        page = client.get("/ui/contacts").text
        token = csrf_of(page)
        added = client.post("/ui/contacts", data={
            "csrf": token, "name": "Rhein desk", "email": "abuse@rhein.test", "asn": "AS64502",
            "country": "DE", "kind": "hoster", "group_seconds": "300", "approved": "true",
        })  # fmt: skip
        assert added.status_code == 303
        refused = client.post("/ui/contacts", data={"csrf": token, "name": "No rule"})
        assert refused.status_code == 303
        listing = client.get("/ui/contacts").text
        assert "Rhein desk" in listing and "a hoster&#39;s contact needs a rule" in listing
        dijk = directory_id(world, "Dijk")
        approved = client.post(f"/ui/contacts/{dijk}/approve",
                               data={"csrf": token, "approved": "true"},
                               headers={"HX-Request": "true"})  # fmt: skip
        assert approved.status_code == 200 and "approved" in approved.text
        assert client.post(f"/ui/contacts/{dijk}/approve", data={"approved": "true"}).status_code \
            == 403  # fmt: skip
        edit = client.get(f"/ui/contacts/{dijk}")
        assert edit.status_code == 200 and "abuse@dijk.test" in edit.text
        saved = client.post(f"/ui/contacts/{dijk}", data={
            "csrf": token, "name": "Dijk abuse", "email": "abuse@dijk.test", "asn": "64501",
            "kind": "hoster", "group_seconds": "60", "note": "answers within the hour",
        })  # fmt: skip
        assert saved.status_code == 303
        with world.session() as session:
            info = directory.get_contact(session, dijk)
        assert (info.name, info.group_seconds, info.approved) == ("Dijk abuse", 60, True)
        assert client.get("/ui/contacts/99999").status_code == 404

        exported = client.get("/ui/contacts/export?format=csv")
        assert "attachment" in exported.headers["content-disposition"]
        assert {r["name"] for r in csv.DictReader(io.StringIO(exported.text))} == {
            "Dijk abuse", "Rhein desk"}  # fmt: skip
        assert json.loads(client.get("/ui/contacts/export?format=json").text)[0]["name"]
        assert client.get("/ui/contacts/export?format=xml").status_code == 400

        retried = client.post(f"/ui/contact-needed/{ids['waiting']}/retry", data={"csrf": token})
        assert retried.status_code == 303
        with world.session() as session:
            events = [e.event for e in items.timeline(session, ids["waiting"])]
            assert "retried" in events
            assert session.get(UrlItem, ids["waiting"]).state != "contact_needed" or \
                events.count("contact_needed") == 2  # fmt: skip
        again = client.post(f"/ui/contact-needed/{ids['abroad']}/retry", data={"csrf": token})
        assert again.status_code == 409

        forwards = client.get("/ui/forwards/export?format=csv&since=2000-01-01")
        assert forwards.status_code == 200 and "DE" in forwards.text
        document = json.loads(client.get("/ui/forwards/export?format=json").text)
        assert document["forwards"][0]["network_owner"] == "Rhein Server GmbH"


def directory_id(world, name: str) -> int:
    with world.session() as session:
        return directory.get_contact(session, name).id


def test_forwards_api(db_url):
    with running(db_url) as world:
        _seed(world)
        with world.client("analyst") as client:
            answer = client.get("/v1/forwards")
            assert answer.status_code == 200, answer.text
            (record,) = answer.json()["forwards"]
            assert (record["hosting_country"], record["asn"]) == ("DE", 64502)
            assert client.get("/v1/forwards", params={"since": "2999-01-01T00:00:00"}).json()[
                "forwards"] == []  # fmt: skip
            assert client.get("/v1/forwards", params={"limit": 0}).status_code == 422
        with world.client("platform") as client:
            assert client.get("/v1/forwards").status_code == 403
