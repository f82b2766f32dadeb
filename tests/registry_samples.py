"""Small, realistic sample files in the formats the registry reads, with random hashes.

The hashes are fresh random values every time (secrets.token_hex): never real lists.
"""

from __future__ import annotations

import base64
import json
import secrets
from dataclasses import dataclass, field

CONTEXT_13 = "http://github.com/ICMEC/ProjectVic/DataModels/1.3.xml#Media"
CONTEXT_20 = "http://github.com/VICSDATAMODEL/ProjectVic/DataModels/2.0.xml/Default/$metadata#Media"


def md5() -> str:
    return secrets.token_hex(16)


def sha1() -> str:
    return secrets.token_hex(20)


def sha256() -> str:
    return secrets.token_hex(32)


def pdq() -> str:
    return secrets.token_hex(32)


def photodna() -> str:
    return base64.b64encode(secrets.token_bytes(144)).decode("ascii")


@dataclass
class Sample:
    """A file's bytes and what a correct reader must find in it."""

    data: bytes
    #: record/line number -> expected signals (type, normalised value)
    good: dict[int, list[tuple[str, str]]] = field(default_factory=dict)
    #: record/line number -> a fragment of the reason it is rejected
    bad: dict[int, str] = field(default_factory=dict)
    #: record/line number -> expected category code
    categories: dict[int, str] = field(default_factory=dict)


def vics_13_flat() -> Sample:
    """VICS 1.3: media at the top level, flags as strings, upper-case hashes, PhotoDNA."""
    a, b, c = (md5(), sha1(), photodna()), (md5(), sha1(), None), (md5(), None, photodna())
    value = [
        {"MediaID": 101, "Category": 1, "MD5": a[0].upper(), "SHA1": a[1].upper(),
         "PhotoDNA": a[2], "IsDistributed": "true", "VictimIdentified": "false",
         "IsPrecategorized": "True", "Series": "", "MediaSize": 48213},
        {"MediaID": 102, "Category": 0, "md5": b[0], "Sha1": b[1], "IsDistributed": "false",
         "MediaFiles": [{"MD5": b[0], "FileName": "x.jpg", "FilePath": "case\\x.jpg"}]},
        {"MediaID": 103, "Category": 3, "MD5": c[0], "PhotoDNA": c[2], "SHA1": ""},
        {"MediaID": 104, "Category": 1, "MD5": "not-a-hash"},
        {"MediaID": 105, "Category": 2},
        {"MediaID": 106, "Category": 9, "MD5": md5()},
    ]  # fmt: skip
    doc = {"odata.metadata": CONTEXT_13, "value": value}
    return Sample(
        data=json.dumps(doc, indent=1).encode(),
        good={
            1: [("md5", a[0]), ("sha1", a[1]), ("photodna", a[2])],
            2: [("md5", b[0]), ("sha1", b[1])],
            3: [("md5", c[0]), ("photodna", c[2])],
            6: [("md5", value[5]["MD5"])],
        },
        bad={4: "md5 must be 32 hex digits", 5: "no hash"},
        categories={1: "csam", 2: "uncategorised", 3: "cgi_animation", 6: "unknown"},
    )


def vics_20_cases() -> Sample:
    """VICS 2.0: cases with their media nested, JSON booleans, AlternativeHashes, SHA-256."""
    m = [(md5(), sha256(), photodna(), pdq()) for _ in range(3)]
    doc = {
        "@odata.context": CONTEXT_20.replace("#Media", "#Cases"),
        "value": [
            {
                "CaseID": "2024-0001",
                "CaseMetadata": [{"Name": "sample", "TotalMediaFiles": 2}],
                "Media": [
                    {"MediaID": 1, "Category": 1, "MD5": m[0][0], "SHA256": m[0][1],
                     "IsDistributed": True, "OffenderIdentified": False,
                     "AlternativeHashes": [{"HashName": "PhotoDNA", "HashValue": m[0][2]},
                                           {"HashName": "PDQ", "HashValue": m[0][3]}]},
                    {"MediaID": 2, "Category": 2, "MD5": m[1][0], "IsPrecategorized": False},
                ],
            },
            {
                "CaseID": "2024-0002",
                "Media": [
                    {"MediaID": 3, "Category": 4, "Md5": m[2][0].upper(), "PDQ": m[2][3]},
                    {"MediaID": 4, "Category": 1, "MD5": m[2][0][:30]},
                ],
            },
        ],
    }  # fmt: skip
    return Sample(
        data=json.dumps(doc).encode(),
        good={
            1: [("md5", m[0][0]), ("sha256", m[0][1]), ("photodna", m[0][2]), ("pdq", m[0][3])],
            2: [("md5", m[1][0])],
            3: [("md5", m[2][0]), ("pdq", m[2][3])],
        },
        bad={4: "md5 must be 32 hex digits"},
        categories={1: "csam", 2: "child_exploitive", 3: "comparison"},
    )


ICSE_HEADER = (
    "MD5;SHA1;PhotoDNA;Image ID;Is distributed;Victim identified;Offender identified;"
    "Series name;Number of submissions;File Available;Media Type;Baseline"
)


def icse() -> Sample:
    a, b, c = (md5(), sha1()), (md5(), sha1()), md5()
    lines = [
        ICSE_HEADER,
        f"{a[0].upper()};{a[1].upper()};;IMG-1;Y;N;N;;3;Y;Image;Y",
        f"{b[0]};{b[1]};;IMG-2;N;N;N;series one;1;N;Image;N",
        "",
        f"{c};;;IMG-3;;;;;;;Image;",
        f"{c[:31]}g;;;IMG-4;Y;N;N;;1;Y;Image;Y",
        ";;;IMG-5;Y;N;N;;1;Y;Image;Y",
    ]
    return Sample(
        data=("\r\n".join(lines) + "\r\n").encode(),
        good={
            2: [("md5", a[0]), ("sha1", a[1])],
            3: [("md5", b[0]), ("sha1", b[1])],
            5: [("md5", c)],
        },
        bad={6: "hexadecimal", 7: "no hash"},
        categories={2: "csam_baseline", 3: "csam_national"},
    )


def te_csv(header: bool = True) -> Sample:
    a, b, c = pdq(), md5(), pdq()
    lines = [
        f"pdq,{a},Sample Collab,POSITIVE_CLASS,tag1 tag2",
        f"video_md5,{b},Sample Collab,POSITIVE_CLASS,",
        f"pdq,{c},Sample Collab,NEGATIVE_CLASS,",
        "pdq,0123,Sample Collab,POSITIVE_CLASS,",
        f"url,{md5()},Sample Collab,POSITIVE_CLASS,",
        "pdq",
    ]
    if header:
        lines.insert(0, "signal_type,signal_str,collab,category,tags")
    shift = 1 if header else 0
    return Sample(
        data=("\n".join(lines) + "\n").encode(),
        good={1 + shift: [("pdq", a)], 2 + shift: [("md5", b)], 3 + shift: [("pdq", c)]},
        bad={4 + shift: "64 hex digits", 5 + shift: "unknown signal type", 6 + shift: "expected"},
        categories={3 + shift: "non_pertinent"},
    )


def plain() -> Sample:
    a, b, c = md5(), pdq(), sha256()
    lines = [
        "# known material, exported 2025-01-01",
        "",
        f"md5 {a}",
        f"PDQ\t{b.upper()}",
        "md5",
        f"sha256 {c}   ",
        f"md5 {md5()} trailing",
        "   # indented comment",
        f"sha-1 {sha1()[:-1]}",
    ]
    return Sample(
        data=("\n".join(lines) + "\n").encode(),
        good={3: [("md5", a)], 4: [("pdq", b)], 6: [("sha256", c)]},
        bad={5: "expected '<signal_type> <value>'", 7: "expected", 9: "40 hex digits"},
    )


def jsonl() -> Sample:
    a, b = (md5(), pdq()), md5()
    lines = [
        json.dumps({"reference": "r1", "status": "active", "category": "csam_baseline",
                    "category_raw": "A1", "category_scheme": "industry", "note": "first",
                    "signals": [{"type": "md5", "value": a[0]}, {"type": "pdq", "value": a[1]}]}),
        json.dumps({"signals": [["md5", b]], "category": "B"}),
        '{"signals": [{"type": "md5", "value": "',
        json.dumps({"reference": "no signals"}),
        json.dumps({"signals": [{"type": "md5", "value": md5()}], "status": "gone"}),
        "",
    ]  # fmt: skip
    return Sample(
        data=("\n".join(lines) + "\n").encode(),
        good={1: [("md5", a[0]), ("pdq", a[1])], 2: [("md5", b)]},
        bad={3: "broken JSON", 4: "missing field 'signals'", 5: "status must be one of"},
        categories={1: "csam_baseline", 2: "csam"},
    )
