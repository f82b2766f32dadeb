"""Attribution: the IP-to-ASN table (both formats, IPv4 and IPv6, bad lines), longest-prefix
lookups, the abuse-contact directory's rules, and the attribution step's outcomes over the
resolver's name table, on SQLite and PostgreSQL."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from meldpunt import clock as meldpunt_clock
from meldpunt.clock import FrozenClock, use_clock
from meldpunt.reports import fetcher, items
from meldpunt.reports.errors import Conflict, InvalidInput, NotFound
from meldpunt.store.models import AsnPrefix, AuditEvent, ItemEvent, UrlItem
from meldpunt.takedown import asn, directory, forwards
from meldpunt.takedown.attribution import retry_attribution, run_attributions
from takedown_support import TABLE, Names, context, no_dns, ready_item

T0 = datetime(2025, 3, 3, 9, 0, tzinfo=UTC)


@pytest.fixture
def clock():
    with use_clock(FrozenClock(T0)) as frozen:
        yield frozen


@pytest.fixture(autouse=True)
def dns(monkeypatch):
    monkeypatch.setattr(fetcher, "resolve", no_dns)


@pytest.fixture
def names(tmp_path):
    return Names(tmp_path / "names")


# --- the table -----------------------------------------------------------------------------------


def test_csv_ranges_become_prefixes_ipv4_and_ipv6_with_bad_lines_reported(session, clock):
    lines = [
        "start,end,asn,org,country",
        "192.0.2.0,192.0.2.255,64496,Example Net,NL",  # one /24
        "198.51.100.0,198.51.100.9,64497,Ten Addresses,DE",  # /29 + /31
        "2001:db8::,2001:db8:ffff:ffff:ffff:ffff:ffff:ffff,64498,Six Net,GB",
        "203.0.113.0,203.0.113.255,0,Not routed,None",  # AS 0: skipped
        "203.0.113.9,203.0.113.1,64499,Backwards,NL",  # ends before it starts
        "nonsense,line,here",
        "192.0.2.0,2001:db8::1,64500,Mixed,NL",
        "10.0.0.0,10.0.0.255,AS99999999999,Too big,NL",
        "10.0.1.0,10.0.1.255,64501,Bad country,Nederland",
    ]
    result = asn.load_table(session, lines, "csv", actor="test")
    assert result.taken == 4
    assert result.skipped == 1
    assert result.bad == 5
    assert [p.split(":")[0] for p in result.problems] == [
        "line 6", "line 7", "line 8", "line 9", "line 10"
    ]  # fmt: skip
    prefixes = {p.prefix: p for p in session.scalars(select(AsnPrefix))}
    assert set(prefixes) == {"192.0.2.0/24", "198.51.100.0/29", "198.51.100.8/31", "2001:db8::/32"}
    assert prefixes["2001:db8::/32"].asn == 64498
    assert prefixes["2001:db8::/32"].country == "GB"
    assert prefixes["198.51.100.8/31"].org == "Ten Addresses"
    network = asn.lookup(session, "2001:db8:1::5")
    assert network is not None and network.asn == 64498
    assert asn.lookup(session, "198.51.100.9").asn == 64497
    assert asn.lookup(session, "198.51.100.10") is None
    assert asn.lookup(session, "::ffff:192.0.2.7").asn == 64496  # IPv4-mapped
    audited = session.scalars(select(AuditEvent).where(AuditEvent.action.like("takedown.%")))
    assert [e.action for e in audited] == ["takedown.asn_table.loaded"]


def test_public_data_set_shapes_without_header(session, clock):
    # iptoasn.com's TSV: start, end, asn, country, description
    tsv = [
        "1.0.0.0\t1.0.0.255\t13335\tUS\tCLOUDFLARENET",
        "1.0.4.0\t1.0.7.255\t38803\tAU\tGTELECOM",
    ]
    assert asn.load_table(session, tsv, "csv").taken == 2
    # DB-IP's ip-to-asn CSV: start, end, asn, org (quoted when it has a comma)
    dbip = ['1.0.16.0,1.0.31.255,2519,"ARTERIA Networks, Corp."']
    assert asn.load_table(session, dbip, "csv").taken == 1
    cloudflare = asn.lookup(session, "1.0.0.1")
    assert (cloudflare.asn, cloudflare.country, cloudflare.org) == (13335, "US", "CLOUDFLARENET")
    assert asn.lookup(session, "1.0.5.5").prefix == "1.0.4.0/22"
    arteria = asn.lookup(session, "1.0.20.1")
    assert (arteria.org, arteria.country) == ("ARTERIA Networks, Corp.", None)


def test_pyasn_format_with_comments_and_bad_lines(session, tmp_path, clock):
    path = tmp_path / "ipasn.dat"
    path.write_text(
        "; IP-ASN32-DAT file\n; Original source:\trib.20250301.0000.bz2\n"
        "1.0.0.0/24\t13335\n2001:200::/32\t2500\n2001:200:900::/40\t7660\n"
        "not-a-prefix\t123\n1.0.4.0/22\n8.8.8.0/24 15169 ; a comment\n"
    )
    result = asn.load_table(session, path, "pyasn")
    assert (result.taken, result.bad) == (4, 2)
    assert result.problems[0].startswith("line 6:")
    # longest prefix: the /40 inside the /32
    assert asn.lookup(session, "2001:200:900::1").asn == 7660
    assert asn.lookup(session, "2001:200:1::1").asn == 2500
    assert asn.lookup(session, "8.8.8.8").asn == 15169


def test_radix_longest_prefix_and_merge_or_replace(session, clock):
    asn.load_table(session, ["10.0.0.0/8 1", "10.1.0.0/16 2", "10.1.2.0/24 3"], "pyasn")
    assert [asn.lookup(session, a).asn for a in ("10.9.9.9", "10.1.9.9", "10.1.2.9")] == [1, 2, 3]
    # merge: the /16 changes, the rest stays
    result = asn.load_table(session, ["10.1.0.0/16 22", "192.0.2.0/24 4"], "pyasn")
    assert (result.taken, result.removed, result.total) == (2, 1, 4)
    assert [asn.lookup(session, a).asn for a in ("10.9.9.9", "10.1.9.9", "192.0.2.1")] == [1, 22, 4]
    # replace: only the new table
    result = asn.load_table(session, ["10.0.0.0/8 5"], "pyasn", replace=True)
    assert (result.removed, result.total) == (4, 1)
    assert asn.lookup(session, "10.1.2.9").asn == 5
    assert asn.lookup(session, "192.0.2.1") is None


def test_the_tree_follows_a_table_another_process_changed(session, clock):
    asn.load_table(session, ["10.0.0.0/8 1"], "pyasn")
    session.commit()
    elsewhere = asn.AsnTable()  # another process's tree
    assert elsewhere.refresh(session).lookup("10.1.1.1").asn == 1
    # a new table of as many rows: on SQLite a deleted highest id would come back, but loads
    # write above it, so the fingerprint (count, highest id) changes
    asn.load_table(session, ["10.0.0.0/8 7"], "pyasn", replace=True)
    session.commit()
    assert asn.lookup(session, "10.1.1.1").asn == 7  # this process loaded it: seen at once
    assert elsewhere.refresh(session).lookup("10.1.1.1").asn == 1  # read at most once a second
    clock.advance(asn.CHECK_SECONDS)
    assert elsewhere.refresh(session).lookup("10.1.1.1").asn == 7
    # a merge that only changes a row changes the fingerprint too
    asn.load_table(session, ["10.0.0.0/8 8"], "pyasn")
    session.commit()
    clock.advance(asn.CHECK_SECONDS)
    assert elsewhere.refresh(session).lookup("10.1.1.1").asn == 8
    assert len(elsewhere) == 1


def test_unknown_format_refused(session):
    with pytest.raises(InvalidInput):
        asn.load_table(session, [], "bgpdump")


# --- the directory -------------------------------------------------------------------------------


def test_domain_rule_beats_asn_beats_org(session, clock):
    add = directory.add_contact
    add(session, "network owner", actor="t", org="Polder Hosting B.V.", email="a@owner.example")
    add(session, "network", actor="t", asn=64500, email="abuse@as64500.example")
    add(
        session, "reseller", actor="t", domain="*.Reseller.Example.", email="abuse@reseller.example"
    )
    add(session, "reseller's customer", actor="t", domain="shop.reseller.example",
        email="abuse@shop.example")  # fmt: skip

    def found(host, number=64500, org="Polder Hosting B.V."):
        contact = directory.find_contact(session, host, number, org)
        return None if contact is None else contact.name

    assert found("reseller.example") == "reseller"
    assert found("img.cdn.reseller.example") == "reseller"
    assert found("x.shop.reseller.example") == "reseller's customer"  # the longest name
    assert found("notreseller.example") == "network"
    assert found("other.example") == "network"
    assert found("other.example", 64999) == "network owner"
    assert found("other.example", 64999, "polder hosting b.v.") == "network owner"  # any case
    assert found("other.example", 64999, "Someone Else") is None
    assert found("reseller.example", None, None) == "reseller"


def test_approved_contacts_first_and_checks(session, clock):
    directory.add_contact(session, "old desk", actor="t", asn=64500, email="old@example.org")
    directory.add_contact(session, "new desk", actor="t", asn=64500, email="new@example.org",
                          approved=True)  # fmt: skip
    assert directory.find_contact(session, "x.example", 64500, None).name == "new desk"
    with pytest.raises(InvalidInput, match="rule"):
        directory.add_contact(session, "nowhere", actor="t", email="x@example.org")
    with pytest.raises(InvalidInput, match="e-mail"):
        directory.add_contact(session, "mute", actor="t", asn=1, approved=True)
    with pytest.raises(InvalidInput, match="country"):
        directory.add_contact(session, "c", actor="t", asn=1, country="NLD")
    with pytest.raises(InvalidInput, match="host name"):
        directory.add_contact(session, "d", actor="t", domain="bad_name..example")
    with pytest.raises(Conflict):
        directory.add_contact(session, "old desk", actor="t", asn=2)
    info = directory.get_contact(session, "old desk")
    assert info.group_seconds == 120  # takedown_group_seconds
    assert info.approved is False
    info = directory.approve_contact(session, "old desk", actor="t")
    assert info.approved is True
    info = directory.update_contact(session, info.id, actor="t", country="de", hold_weekends=True)
    assert (info.country, info.hold_weekends) == ("DE", True)
    directory.remove_contact(session, "old desk", actor="t")
    with pytest.raises(NotFound):
        directory.get_contact(session, "old desk")
    actions = [e.action for e in session.scalars(select(AuditEvent).order_by(AuditEvent.id))]
    assert actions == ["takedown.contact.added", "takedown.contact.added",
                       "takedown.contact.updated", "takedown.contact.updated",
                       "takedown.contact.removed"]  # fmt: skip


@pytest.mark.parametrize("fmt", ["csv", "json"])
def test_directory_export_and_import_round_trip(session, clock, fmt):
    directory.add_contact(session, "Polder abuse", actor="t", asn=64500, country="NL",
                          email="abuse@polder.example", approved=True, group_seconds=300,
                          note="answers fast")  # fmt: skip
    directory.add_contact(session, "CDN", actor="t", domain="cdn.example", email="a@cdn.example")
    directory.add_contact(session, "Politie", actor="t", kind="police", email="p@politie.example")
    exported = directory.export_contacts(session, fmt)
    directory.remove_contact(session, "CDN", actor="t")
    directory.update_contact(session, "Polder abuse", actor="t", group_seconds=5)
    bad = (
        "\nname,kind,asn\nBroken,hoster,AS-x\n" if fmt == "csv"
        else json.dumps(json.loads(exported) + [{"name": "Broken", "asn": "AS-x"}, 7])
    )  # fmt: skip
    result = directory.import_contacts(session, exported if fmt == "csv" else bad, fmt, actor="t")
    assert (result.added, result.updated) == (1, 2)
    if fmt == "json":
        assert len(result.problems) == 2
    contacts = {c.name: c for c in directory.list_contacts(session)}
    assert contacts["Polder abuse"].group_seconds == 300
    assert contacts["Polder abuse"].note == "answers fast"
    assert contacts["CDN"].domain == "cdn.example"
    assert contacts["Politie"].kind == "police"
    if fmt == "csv":
        rows = list(csv.DictReader(io.StringIO(exported)))
        assert tuple(rows[0]) == directory.EXPORT_FIELDS


# --- the step ------------------------------------------------------------------------------------


def _events(session, item_id):
    return [(e.event, json.loads(e.details or "{}")) for e in items.timeline(session, item_id)]


def test_attribution_outcomes(engine, session, settings, names, clock):
    asn.load_table(session, TABLE.splitlines(), "csv")
    names.point("polder.test", "127.0.0.5")
    names.point("dijk.test", "127.1.0.5")
    names.point("rhein.test", "127.2.0.5")
    names.point("img.reseller.test", "127.1.0.9")
    names.point("nowhere.test", "10.9.9.9")  # an address the table does not hold
    directory.add_contact(session, "Polder", actor="t", asn=64500, email="abuse@polder.test",
                          approved=True)  # fmt: skip
    directory.add_contact(session, "Dijk", actor="t", asn=64501, email="abuse@dijk.test")
    directory.add_contact(session, "Reseller", actor="t", domain="reseller.test",
                          email="abuse@reseller.test", approved=True)  # fmt: skip
    urls = {
        "polder": "http://polder.test/a.jpg",
        "dijk": "http://dijk.test/b.jpg",
        "rhein": "http://rhein.test/c.jpg",
        "reseller": "http://img.reseller.test/d.jpg",
        "nowhere": "http://nowhere.test/e.jpg",
        "gone": "http://gone.invalid/f.jpg",
    }
    ids = {k: ready_item(session, u).id for k, u in urls.items()}
    not_yet = ready_item(session, "http://polder.test/later.jpg")
    not_yet.due_at = T0 + timedelta(minutes=5)
    session.commit()

    ctx = context(engine, settings, names)
    assert run_attributions(ctx, 50) == 6
    assert run_attributions(ctx, 50) == 0
    session.expire_all()
    got = {k: session.get(UrlItem, i) for k, i in ids.items()}

    polder = got["polder"]
    assert polder.state == "ready"
    assert (polder.ip, polder.asn, polder.network_owner, polder.country) == (
        "127.0.0.5", 64500, "Polder Hosting B.V.", "NL")  # fmt: skip
    assert polder.attributed_at == T0 and polder.due_at == T0
    assert polder.contact_id == directory.get_contact(session, "Polder").id
    assert _events(session, polder.id)[-1][0] == "attributed"

    assert got["reseller"].state == "ready"  # the domain rule, on Dijk's network
    assert got["reseller"].contact_id == directory.get_contact(session, "Reseller").id
    assert got["reseller"].asn == 64501

    dijk = got["dijk"]
    assert dijk.state == "contact_needed" and dijk.attributed_at is None and dijk.due_at is None
    assert "not approved" in _events(session, dijk.id)[-1][1]["why"]
    assert dijk.asn == 64501  # what was found stays for the analysts

    rhein = got["rhein"]
    assert rhein.state == "forwarded" and rhein.country == "DE"
    assert rhein.next_check_at == T0 + timedelta(minutes=settings.takedown_check_minutes)
    event, facts = _events(session, rhein.id)[-1]
    assert event == "forwarded"
    assert facts["hosting_country"] == "DE" and facts["classification"] == "csam_baseline"

    assert got["nowhere"].state == "contact_needed"
    assert "no network" in _events(session, got["nowhere"].id)[-1][1]["why"]
    assert got["gone"].state == "contact_needed"
    assert "does not resolve" in _events(session, got["gone"].id)[-1][1]["why"]
    assert session.get(UrlItem, not_yet.id).attributed_at is None

    # the analysts approve Dijk's contact and ask again
    directory.approve_contact(session, "Dijk", actor="t")
    retry_attribution(session, dijk.id, actor="key:1")
    session.commit()
    with pytest.raises(Conflict):
        retry_attribution(session, polder.id, actor="key:1")
    session.rollback()
    meldpunt_clock.get_clock().advance(timedelta(minutes=1))
    assert run_attributions(ctx, 50) == 1
    session.expire_all()
    dijk = session.get(UrlItem, ids["dijk"])
    assert dijk.state == "ready" and dijk.attributed_at is not None
    assert [e for e, _ in _events(session, dijk.id)][-3:] == ["contact_needed", "retried",
                                                               "attributed"]  # fmt: skip
    audited = {e.action for e in session.scalars(select(AuditEvent))}
    assert {"hotline.attributed", "hotline.forwarded", "hotline.contact_needed",
            "hotline.retried"} <= audited  # fmt: skip


def test_the_name_table_moves_attribution(engine, session, settings, names, clock):
    """The resolver's name table is read again when it changes: attribution follows it."""
    asn.load_table(session, TABLE.splitlines(), "csv")
    for number, name in ((64500, "Polder"), (64501, "Dijk")):
        directory.add_contact(session, name, actor="t", asn=number, email=f"a@{name}.test",
                              approved=True)  # fmt: skip
    names.point("site.test", "127.0.0.7")
    first = ready_item(session, "http://site.test/1.jpg")
    session.commit()
    ctx = context(engine, settings, names)
    run_attributions(ctx, 10)
    names.point("site.test", "127.1.0.7")
    second = ready_item(session, "http://site.test/2.jpg")
    session.commit()
    run_attributions(ctx, 10)
    session.expire_all()
    assert session.get(UrlItem, first.id).asn == 64500
    assert session.get(UrlItem, second.id).asn == 64501


def test_forward_records_export(engine, session, settings, names, clock):
    asn.load_table(session, TABLE.splitlines(), "csv")
    names.point("rhein.test", "127.2.0.5")
    abroad = ready_item(session, "http://rhein.test/c.jpg", body=b"benign bytes")
    abroad.md5 = "0" * 32
    session.commit()
    run_attributions(context(engine, settings, names), 10)
    session.expire_all()
    document = json.loads(forwards.export_forwards(session, None, "json"))
    (record,) = document["forwards"]
    assert record["url"] == "http://rhein.test/c.jpg"
    assert record["hosting_country"] == "DE"
    assert record["ip"] == "127.2.0.5" and record["asn"] == 64502
    assert record["network_owner"] == "Rhein Server GmbH"
    assert record["classification"] == "csam_baseline"
    assert record["state"] == "forwarded" and record["report_kind"] == "csam"
    assert [a["action"] for a in record["actions"]] == ["graded", "forwarded"]
    assert record["reference"].startswith("meldpunt-")
    rows = list(csv.DictReader(io.StringIO(forwards.export_forwards(session, None, "csv"))))
    assert rows[0]["hosting_country"] == "DE" and "forwarded" in rows[0]["actions"]
    assert tuple(rows[0]) == forwards.FIELDS
    assert (
        json.loads(forwards.export_forwards(session, T0 + timedelta(seconds=1)))["forwards"] == []
    )
    with pytest.raises(InvalidInput):
        forwards.export_forwards(session, None, "xml")


def test_events_of_the_timeline_are_in_the_audit_log_per_item(engine, session, settings, names,
                                                              clock):  # fmt: skip
    asn.load_table(session, TABLE.splitlines(), "csv")
    names.point("polder.test", "127.0.0.5")
    directory.add_contact(session, "Polder", actor="t", asn=64500, email="a@p.test", approved=True)
    batch = [ready_item(session, f"http://polder.test/{i}.jpg").id for i in range(30)]
    session.commit()
    assert run_attributions(context(engine, settings, names), 20) == 20
    assert run_attributions(context(engine, settings, names), 20) == 10
    attributed = session.scalars(
        select(ItemEvent.item_id).where(ItemEvent.event == "attributed").order_by(ItemEvent.item_id)
    )
    assert list(attributed) == batch
