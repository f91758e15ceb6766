"""`manage.py suggest_matches`: the CSV contract end to end, and exit code 2 on bad input."""

import csv
import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from reconcile.mapping.management.commands.suggest_matches import MAX_INPUT_BYTES

ROOT = Path(__file__).resolve().parent.parent.parent


def write(path: Path, text: str, encoding: str = "utf-8") -> Path:
    path.write_text(text, encoding=encoding)
    return path


@pytest.fixture
def psa_csv(tmp_path):
    return write(
        tmp_path / "psa.csv",
        "id,name\n"
        "10,ACME INC\n"
        "11,Bright Smile Dental LLC\n"
        "12,Tri-County Mechanical\n"
        '13,"Smith, Jones & Co."\n'
        "14,Oak Law\n"
        "15,oak law\n",
    )


def run(vendor: Path, psa: Path, out: Path) -> list[dict[str, str]]:
    call_command("suggest_matches", vendor=str(vendor), psa=str(psa), out=str(out))
    with open(out, newline="", encoding="utf-8") as f:
        assert f.readline() == "vendor_name,psa_name,score,decision\r\n"
        f.seek(0)
        return list(csv.DictReader(f))


def test_one_row_per_vendor_name_with_decision_and_score(tmp_path, psa_csv):
    vendor = write(
        tmp_path / "vendor.csv",
        "\ufeffid,name\n"  # a BOM is fine
        "1,Acme Inc\n"
        "2,Bright Smile Dental\n"
        "3,Tri-County Medical\n"
        "4,Oak Law\n"
        "5,  \n"  # a blank name is skipped
        "6,Smith Jones and Company\n",
    )
    rows = run(vendor, psa_csv, tmp_path / "out.csv")
    assert [(r["vendor_name"], r["psa_name"], r["score"], r["decision"]) for r in rows] == [
        ("Acme Inc", "ACME INC", "100.0", "auto"),
        ("Bright Smile Dental", "Bright Smile Dental LLC", "95.2", "suggest"),
        ("Tri-County Medical", "Tri-County Mechanical", "72.2", "none"),
        ("Oak Law", "Oak Law", "100.0", "none"),  # two companies of that name
        ("Smith Jones and Company", "Smith, Jones & Co.", "100.0", "suggest"),
    ]


def test_extra_columns_and_no_id_are_fine(tmp_path):
    vendor = write(tmp_path / "v.csv", "name,region\nAcme Inc,us\n")
    psa = write(tmp_path / "p.csv", "name\nacme inc\n")
    rows = run(vendor, psa, tmp_path / "out.csv")
    assert [(r["psa_name"], r["decision"]) for r in rows] == [("acme inc", "auto")]


def test_no_psa_companies_gives_none_with_empty_name(tmp_path):
    vendor = write(tmp_path / "v.csv", "id,name\n1,Acme Inc\n")
    psa = write(tmp_path / "p.csv", "id,name\n")
    rows = run(vendor, psa, tmp_path / "out.csv")
    assert [(r["psa_name"], r["score"], r["decision"]) for r in rows] == [("", "", "none")]


def sparse_file(path: Path, size: int) -> Path:
    with open(path, "wb") as f:
        f.write(b"id,name\n")
        f.truncate(size)
    return path


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda p: write(p, "id,title\n1,Acme\n"), "no 'name' column"),
        (lambda p: write(p, ""), "the file is empty"),
        (lambda p: write(p, "\n \n"), "the file is empty"),
        (lambda p: sparse_file(p, MAX_INPUT_BYTES + 1), "over the 20 MB limit"),
        (lambda p: p.write_bytes(b"id,name\n1,Caf\xe9\n") and p, "not valid UTF-8"),
        (lambda p: p, "cannot read"),  # no such file
    ],
    ids=["no-name-column", "empty", "blank", "too-large", "latin-1", "missing"],
)
@pytest.mark.parametrize("side", ["vendor", "psa"])
def test_bad_input_is_a_one_line_error_with_exit_code_2(tmp_path, psa_csv, make, message, side):
    bad = make(tmp_path / "bad.csv")
    good_vendor = write(tmp_path / "vendor.csv", "id,name\n1,Acme\n")
    files = {"vendor": good_vendor, "psa": psa_csv, side: bad}
    with pytest.raises(CommandError) as raised:
        call_command(
            "suggest_matches", **{k: str(v) for k, v in files.items()}, out=str(tmp_path / "x.csv")
        )
    assert raised.value.returncode == 2
    assert message in str(raised.value)
    assert "\n" not in str(raised.value)
    assert not (tmp_path / "x.csv").exists()


def test_exit_code_2_from_the_command_line(tmp_path, psa_csv):
    bad = write(tmp_path / "bad.csv", "id,title\n1,Acme\n")
    result = subprocess.run(
        [sys.executable, "manage.py", "suggest_matches", "--vendor", str(bad)]
        + ["--psa", str(psa_csv), "--out", str(tmp_path / "out.csv")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={**os.environ, "DJANGO_SETTINGS_MODULE": "reconcile.settings"},
        timeout=120,
    )
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f"CommandError: {bad}: no 'name' column in the header (expected id,name)"
    ]
    assert not (tmp_path / "out.csv").exists()
