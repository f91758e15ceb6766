"""The matcher's keys, the automatic rule, the scorer and the gold set (no database)."""

import csv
from pathlib import Path

import pytest

from reconcile.mapping import matching
from reconcile.mapping.matching import (
    MARGIN,
    THRESHOLD,
    Decision,
    Suggestion,
    auto_index,
    auto_match,
    best_candidates,
    core_key,
    full_key,
    legal_form,
    match_names,
    name_keys,
    score_pair,
    suggest,
)

GOLD = Path(__file__).resolve().parent.parent / "data" / "msp_gold_pairs.csv"


def score(a: str, b: str) -> float:
    return score_pair(name_keys(a), name_keys(b))


# --- keys ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "key"),
    [
        ("Café Lumière", "cafe lumiere"),  # accents
        ("ACME  Dental\tGroup ", "acme dental group"),  # case, whitespace
        ("Smith & Jones", "smith and jones"),
        ("Smith&Jones", "smith and jones"),
        ("Tri-County (North), Inc.", "tri county north inc"),  # punctuation to spaces
        ("O'Brien’s Pub", "obriens pub"),  # apostrophes join, they do not split
        ("Straße", "strasse"),  # casefold, not lower
        ("The Law Office, P.C.", "the law office pc"),  # the full key keeps "The" and "P.C."
    ],
)
def test_full_key_basic_clean_up(name, key):
    assert full_key(name) == key


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("J.N.R. Plumbing", "JNR Plumbing"),  # dotted initials
        ("J N R Plumbing", "JNR Plumbing"),  # spaced initials
        ("H.V.A.C. Pros", "HVAC Pros"),
        ("BlueWave Marketing", "Blue Wave Marketing"),  # run together, camel case
        ("St. Mary's Church", "Saint Marys Church"),
        ("Main St. Dental", "Main Street Dental"),
        ("Allied Property Mgmt", "Allied Property Management"),
        ("Tri-County Svcs", "Tri-County Services"),
        ("Kowalski Bros", "Kowalski Brothers"),
        ("Lakeside Community Ctr", "Lakeside Community Center"),
        ("Northgate Vet Clinic", "Northgate Veterinary Clinic"),
        ("Apex Mfg", "Apex Manufacturing"),
        ("Two Rivers Credit Union", "2 Rivers Credit Union"),  # digits vs words
        ("First Choice Accounting", "1st Choice Accounting"),
        ("Acme Corporation", "Acme Corp"),  # legal words contracted
        ("Acme Company", "Acme Co"),
    ],
)
def test_full_key_spelling_variants_are_equal(a, b):
    assert full_key(a) == full_key(b)


def test_initials_join_only_runs_of_single_letters():
    assert full_key("A Plus Dental") == "a plus dental"
    assert full_key("A & B Supply") == "a and b supply"


def test_camel_case_split_leaves_capitals_alone():
    assert full_key("IBM Services") == "ibm services"
    assert full_key("HVAC Pros") == "hvac pros"


@pytest.mark.parametrize(
    ("name", "core", "legal"),
    [
        ("Acme Inc", "acme", "inc"),
        ("Acme, Inc.", "acme", "inc"),
        ("Acme LLC", "acme", "llc"),
        ("Acme Ltd.", "acme", "ltd"),
        ("Müller GmbH", "muller", "gmbh"),
        ("Jones Law, P.C.", "jones law", "pc"),  # dots read before punctuation is stripped
        ("Doe Dental PLLC", "doe dental", "pllc"),
        ("Acme Corp", "acme", "corp"),
        ("Smith & Co.", "smith", "co"),
        ("Acme Company, Inc.", "acme", "co inc"),  # two passes
        ("Oakridge Pediatrics, P.A.", "oakridge pediatrics", "pa"),  # not in cleanco
        ("The Miller Law Firm", "miller law firm", ""),  # leading "The" dropped
        ("Law Offices of Jane Doe", "law offices jane doe", ""),
        ("Dr. Sarah Kim", "sarah kim", ""),
        ("Acme", "acme", ""),
        ("Inc", "inc", ""),  # nothing left: keep the name
    ],
)
def test_core_key_and_legal_form(name, core, legal):
    assert core_key(name) == core
    assert legal_form(name) == legal
    assert name_keys(name) == (full_key(name), core, legal)


# --- automatic mapping -----------------------------------------------------------------------

PSA = [
    (10, "Acme Inc"),
    (11, "Bright  Smile Dental"),
    (12, "Lakeside Clinic"),
    (13, "LAKESIDE clinic"),
]


def test_auto_match_on_casefold_and_whitespace_equality():
    index = auto_index(PSA)
    assert auto_match("ACME INC", index) == 10
    assert auto_match(" bright smile   dental ", index) == 11


@pytest.mark.parametrize(
    "vendor", ["Acme LLC", "Acme", "Acme, Inc.", "Acme Inc.", "Acme Incorporated"]
)
def test_no_auto_match_on_suffix_or_punctuation_difference(vendor):
    assert auto_match(vendor, auto_index(PSA)) is None


def test_ambiguous_psa_name_is_not_auto_mapped():
    assert auto_match("Lakeside Clinic", auto_index(PSA)) is None


def test_same_id_twice_is_not_ambiguous():
    assert auto_match("acme inc", auto_index([(10, "Acme Inc"), (10, "ACME INC")])) == 10


def test_confirmed_alias_auto_maps_and_wins():
    aliases = auto_index([(12, "Lakeside Family Clinic LLC"), (11, "Acme Inc")])
    assert auto_match("lakeside family clinic llc", auto_index(PSA), aliases) == 12
    assert auto_match("Acme Inc", auto_index(PSA), aliases) == 11
    assert auto_match("Lakeside Family Clinic", auto_index(PSA), aliases) is None


def test_ambiguous_alias_is_not_auto_mapped():
    aliases = auto_index([(12, "Lakeside"), (13, "lakeside")])
    assert auto_match("Lakeside", auto_index(PSA), aliases) is None


# --- scores ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("Acme Corp", "Acme Capital"),  # token_set_ratio / WRatio: 90-100
        ("Riverside Medical", "Riverside Medical Billing Services"),
        ("Acme Inc", "Acme LLC"),  # legal forms conflict
        ("Three Rivers Dental", "Four Rivers Dental"),  # numbers conflict
        ("Tri-County Mechanical", "Tri-County Medical"),  # trades conflict
        ("Pinecrest Animal Hospital", "Pinecrest Animal Hospital East"),  # subset
    ],
)
def test_look_alikes_score_below_threshold(a, b):
    assert score(a, b) < THRESHOLD
    assert score(b, a) < THRESHOLD


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("Acme Corp", "Acme Corporation"),
        ("Smith & Sons Plumbing", "Smith and Sons Plumbing LLC"),
        ("The Law Offices of Jane Doe", "Law Offices of Jane Doe PLLC"),
        ("St. Mary's Clinic", "Saint Marys Clinic"),
        ("Bluewater Pools", "Blue Water Pools"),  # run together without camel case
        ("Hollingsworth Excavating", "Hollingswroth Excavating"),  # transposed letters
    ],
)
def test_variants_score_at_least_threshold(a, b):
    assert score(a, b) >= THRESHOLD


def test_conflict_costs_the_penalty():
    assert score("Acme Dental", "Acme Dental") == 100.0
    # Both sides identical but for the legal form: the penalty is the only difference left.
    alike = score("Harbor View Dental Inc", "Harbor View Dental Incorporated")
    assert alike == 100.0
    sister = score("Harbor View Dental Inc", "Harbor View Dental LLC")
    assert sister < alike - matching.CONFLICT_PENALTY + 1


def test_suggest_requires_threshold_and_margin():
    psa = [
        name_keys(n) for n in ("Summit Dental Care LLC", "Summit Dental Care Inc", "Oak Law LLC")
    ]
    vendors = [name_keys(n) for n in ("Summit Dental Care", "Oak Law")]
    twins, oak = best_candidates(vendors, psa)
    assert twins.score == twins.runner_up == score("Summit Dental Care", "Summit Dental Care LLC")
    assert twins.score >= THRESHOLD  # high, but two equally good companies: not suggested
    assert oak == Suggestion(1, 2, score("Oak Law", "Oak Law LLC"), oak.runner_up)
    assert 85 < oak.score < THRESHOLD
    assert suggest(vendors, psa) == []
    assert suggest(vendors, psa, threshold=85) == [oak]
    assert suggest(vendors, psa, margin=0) == [twins]


def test_rejected_pair_is_not_offered_again():
    psa = [name_keys(n) for n in ("Oakwood Law Group LLC", "Oakwood Law Group, P.C.", "Birch")]
    vendors = [name_keys("Oakwood Law Group")]
    first = suggest(vendors, psa, margin=0)
    assert [s.psa_index for s in first] == [1]
    again = suggest(vendors, psa, margin=0, rejected={(0, 1)})
    assert [s.psa_index for s in again] == [0]
    assert again[0].runner_up == score("Oakwood Law Group", "Birch")  # rejected: no runner-up
    assert best_candidates(vendors, psa, rejected={(0, 0), (0, 1), (0, 2)}) == [
        Suggestion(0, None, 0.0, 0.0)
    ]


def test_no_psa_companies():
    assert best_candidates([name_keys("Oak Law")], []) == [Suggestion(0, None, 0.0, 0.0)]
    assert suggest([name_keys("Oak Law")], []) == []


def test_chunks_give_the_same_result(monkeypatch):
    psa = [name_keys(f"Oak {i} Law Group") for i in range(7)] + [name_keys("Oak Law")]
    vendors = [name_keys(n) for n in ("Oak Law", "Oak 3 Law Group", "Oak Law LLC", "Birch")]
    whole = best_candidates(vendors, psa, rejected={(2, 7)})
    monkeypatch.setattr(matching, "CHUNK_ROWS", 1)
    assert best_candidates(vendors, psa, rejected={(2, 7)}) == whole
    assert [c.psa_index for c in whole[:2]] == [7, 3]


def test_match_names_decisions():
    psa = ["ACME INC", "Bright Smile Dental LLC", "Tri-County Mechanical", "Oak Law", "OAK LAW"]
    vendors = ["Acme Inc", "Bright Smile Dental", "Tri-County Medical", "Oak Law", "Acme LLC"]
    decisions = match_names(vendors, psa)
    assert [(d.vendor_name, d.psa_name, d.decision) for d in decisions] == [
        ("Acme Inc", "ACME INC", "auto"),
        ("Bright Smile Dental", "Bright Smile Dental LLC", "suggest"),
        ("Tri-County Medical", "Tri-County Mechanical", "none"),
        ("Oak Law", "Oak Law", "none"),  # two PSA companies of that name: ambiguous
        ("Acme LLC", "ACME INC", "none"),  # a sister company, maybe
    ]
    assert decisions[0].score == 100.0
    assert decisions[1].score == pytest.approx(
        score("Bright Smile Dental", "Bright Smile Dental LLC")
    )
    assert match_names(["Oak Law"], []) == [Decision("Oak Law", "", None, "none")]


# --- the gold set ----------------------------------------------------------------------------


def gold_pairs() -> list[dict[str, str]]:
    with open(GOLD, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def test_gold_set_shape():
    pairs = gold_pairs()
    positives = sum(p["same"] == "1" for p in pairs)
    assert len(pairs) >= 150
    assert abs(positives - (len(pairs) - positives)) <= len(pairs) // 10
    assert {p["same"] for p in pairs} == {"0", "1"}


def test_every_hard_negative_scores_below_the_threshold_on_its_own():
    """Stronger than "not suggested": each look-alike alone against its vendor name, with no
    runner-up to lean on, scores under THRESHOLD (so no margin can make it a suggestion)."""
    too_high = [
        (p["vendor_name"], p["psa_name"], round(score(p["vendor_name"], p["psa_name"]), 1))
        for p in gold_pairs()
        if p["same"] == "0" and score(p["vendor_name"], p["psa_name"]) >= THRESHOLD
    ]
    assert too_high == []


def test_gold_set_in_one_pool():
    """Every vendor name against all PSA names of the set: no hard negative is auto-mapped or
    suggested, and at least 95 % of the positives are (the bench prints the figure)."""
    pairs = gold_pairs()
    vendors = sorted({p["vendor_name"] for p in pairs})
    chosen = {
        d.vendor_name: d.psa_name
        for d in match_names(vendors, sorted({p["psa_name"] for p in pairs}))
        if d.decision != "none"
    }
    negatives = [p for p in pairs if p["same"] == "0"]
    assert [p for p in negatives if chosen.get(p["vendor_name"]) == p["psa_name"]] == []
    positives = [p for p in pairs if p["same"] == "1"]
    found = [p for p in positives if chosen.get(p["vendor_name"]) == p["psa_name"]]
    assert len(found) >= 0.95 * len(positives)
    assert THRESHOLD == 90.0 and MARGIN == 5.0  # the figures above were measured with these


def test_basename_is_cleancos_result_on_real_names():
    """Our narrowed call of cleanco must strip exactly what cleanco.basename strips."""
    import cleanco

    from reconcile.mapping.matching import basename
    from sandboxes import data, psa_data

    names = [c.name for c in data.customers("demo")]
    names += [c.name for c in psa_data.universe("demo").companies]
    names += [
        "Acme Co., Inc.",
        "Smith, P.A., Inc.",
        "Müller GmbH & Co. KG",
        "Foo Pty Ltd",
        "Bar S.A.",
        "Y, L.L.C.",
        "The Law Offices of Jane Doe PLLC",
        "Inc",
    ]
    assert [basename(n) for n in names] == [cleanco.basename(n) for n in names]
