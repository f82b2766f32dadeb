"""`meldpunt authority ...` and `meldpunt hosters ...` through Typer's test runner on the
configured database (SQLite and PostgreSQL)."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from meldpunt.cli import app
from meldpunt.store import make_engine, make_sessionmaker
from notice_support import add_contact, ready_item

runner = CliRunner()


def meldpunt(*args: str, code: int = 0, stdin: str | None = None):
    result = runner.invoke(app, list(args), input=stdin)
    assert result.exit_code == code, result.output
    return result


def test_hosters_load_set_list(cli_db, tmp_path):
    csv_file = tmp_path / "hosters.csv"
    csv_file.write_text("asn,name,turnover_euros,turnover_year\n64500,Polder,2500000,2025\n"
                        "x,Bad,1,2025\n")  # fmt: skip
    out = meldpunt("hosters", "load", str(csv_file)).output
    assert "1 line(s) loaded, 1 bad" in out and "line 3:" in out
    meldpunt("hosters", "load", str(tmp_path / "missing.csv"), code=1)
    out = meldpunt("hosters", "set", "64501", "--turnover", "1000", "--name", "Dijk").output
    assert "AS64501: Dijk, turnover €1,000.00" in out
    meldpunt("hosters", "set", "64501", code=1)  # nothing to set
    listed = json.loads(meldpunt("hosters", "list", "-f", "json").stdout)
    assert [(h["asn"], h["turnover_cents"]) for h in listed] == [
        (64500, 250_000_000),
        (64501, 100_000),
    ]
    assert "Polder" in meldpunt("hosters", "list").stdout


def test_authority_escalations_case_order_fine_record(cli_db):
    engine = make_engine(cli_db)
    with make_sessionmaker(engine)() as s:
        from meldpunt.store import init_db

        init_db(cli_db)
        contact = add_contact(s, "polder")
        ids = [ready_item(s, f"http://p.example/{n}.jpg", contact, state="escalated").id
               for n in range(2)]  # fmt: skip
        s.commit()
    engine.dispose()
    escalations = json.loads(meldpunt("authority", "escalations", "-f", "json").stdout)
    assert [g["count"] for g in escalations] == [2]
    assert "AS64500" in meldpunt("authority", "escalations").stdout
    meldpunt("authority", "open", code=1)  # nothing to open it on
    out = meldpunt("authority", "open", "--items", ",".join(map(str, ids))).output
    assert "case C-" in out
    case_id = json.loads(meldpunt("authority", "cases", "-f", "json").stdout)[0]["id"]
    out = meldpunt("authority", "order", str(case_id), "--hours", "13", "--reasons", "R",
                   code=1).output  # fmt: skip
    assert "at most 12 hours" in out
    out = meldpunt("authority", "order", str(case_id), "--hours", "1", "--reasons",
                   "Ignored notices.", "--public").output  # fmt: skip
    assert "issued to abuse@polder.example" in out
    orders = json.loads(meldpunt("authority", "orders", "-f", "json").stdout)
    assert [(o["status"], o["hours"], o["public"]) for o in orders] == [("issued", 1.0, True)]
    assert "issued" in meldpunt("authority", "orders").stdout
    full = json.loads(meldpunt("authority", "orders", "--id", str(orders[0]["id"])).stdout)
    assert len(full["items"]) == 2
    out = meldpunt("authority", "fine", "--asn", "64500", "--share", "0.01", "--basis", "Art. 2",
                   "--reasons", "R", code=1).output  # fmt: skip
    assert "no turnover" in out
    meldpunt("hosters", "set", "64500", "--turnover", "1000000")
    out = meldpunt("authority", "fine", "--case", str(case_id), "--share", "0.04", "--basis",
                   "Art. 2", "--reasons", "Ignored orders.").output  # fmt: skip
    assert "€40,000.00" in out
    out = meldpunt("authority", "fine", "--asn", "64500", "--amount", "40000.01", "--basis",
                   "Art. 2", "--reasons", "R", code=1).output  # fmt: skip
    assert "at most EUR 40,000.00" in out
    record = json.loads(meldpunt("authority", "record", "64500", "-f", "json").stdout)
    assert (record["totals"]["orders"], record["totals"]["fines"]) == (1, 1)
    assert "fine decided" in meldpunt("authority", "record", "64500").stdout
    meldpunt("authority", "close", str(case_id), code=1)  # its order still runs
    meldpunt("authority", "withdraw", str(orders[0]["id"]))
    assert "closed" in meldpunt("authority", "close", str(case_id)).output
    assert json.loads(meldpunt("authority", "case", str(case_id)).stdout)["state"] == "closed"
