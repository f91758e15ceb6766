"""Match KnowBe4 account names to PSA company names: keys, the automatic rule, suggestions.

Pure functions, no database. `name_keys` normalises a name once (the app may store the keys on
the row); `best_candidates`/`suggest` score every vendor name against every PSA name with
`rapidfuzz.process.cdist`, in chunks of vendor rows:

    combo = 0.5 * ratio(full keys) + 0.5 * max(ratio, token_sort_ratio)(core keys)
    score = combo - CONFLICT_PENALTY when the two names conflict, that is when
            - both carry legal forms and share none ("Acme Inc" vs "Acme LLC"), or
            - both contain numbers and share none ("Three Rivers" vs "Four Rivers"), or
            - both name trades (TRADES) and share none ("Catholic Church" vs "Catholic School"),
            - or one core key is the other plus words and the shorter has two words or more
              ("Pinecrest Animal Hospital" vs "Pinecrest Animal Hospital East").

The full key keeps the legal suffix; the core key drops it (a missing "Inc" costs little) and
sorting its words forgives word order, while plain ratio on it forgives run-together words
("Bluewater" vs "Blue Water"). No part rewards subsets as token_set_ratio, WRatio and
partial_ratio do ("Acme Corp" ~ "Acme Capital" 90-100 under those).
"""

import functools
import re
import unicodedata
from collections.abc import Hashable, Iterable, Mapping, Sequence
from typing import NamedTuple, TypeVar

import numpy as np
from cleanco.clean import custom_basename, normalized, prepare_default_terms, strip_punct
from rapidfuzz import fuzz, process
from rapidfuzz.distance import Indel

THRESHOLD = 90.0  # a suggestion's score must reach this ...
MARGIN = 5.0  # ... and beat the runner-up by this much
CONFLICT_PENALTY = 15.0  # see the module doc
CHUNK_ROWS = 500  # vendor names scored per cdist call: 500 x 10,000 float32 = 20 MB a matrix

# Token spellings that mean the same word; both keys use them, so direction does not matter.
# Legal words are contracted ("corporation" -> "corp") so that a suffix present on one side
# only costs few characters of the full key.
TOKEN_SYNONYMS = {
    "incorporated": "inc",
    "corporation": "corp",
    "company": "co",
    "limited": "ltd",
    "grp": "group",
    "mgmt": "management",
    "mgt": "management",
    "svc": "service",
    "svcs": "services",
    "srvcs": "services",
    "bros": "brothers",
    "ctr": "center",
    "centre": "center",
    "vet": "veterinary",
    "assoc": "associates",
    "assocs": "associates",
    "intl": "international",
    "natl": "national",
    "mfg": "manufacturing",
    "dept": "department",
    "hosp": "hospital",
    "univ": "university",
    "acctg": "accounting",
    "cu": "credit union",
    "saint": "st",  # "St." is "Saint" or "Street": contract both
    "street": "st",
    "mt": "mount",
    "ft": "fort",
    "orthopaedic": "orthopedic",
    "orthopaedics": "orthopedics",
    "paediatric": "pediatric",
    "paediatrics": "pediatrics",
    "zero": "0",
    "one": "1",
    "two": "2",
    "three": "3",
    "four": "4",
    "five": "5",
    "six": "6",
    "seven": "7",
    "eight": "8",
    "nine": "9",
    "ten": "10",
    "eleven": "11",
    "twelve": "12",
    "first": "1st",
    "second": "2nd",
    "third": "3rd",
    "fourth": "4th",
    "fifth": "5th",
}

# Words naming a line of business, grouped by trade: two names whose trades share nothing are
# different companies however alike they look ("Tri-County Mechanical" vs "Tri-County Medical").
_TRADE_WORDS = (
    "dental dentistry dentist dentists dds",
    "orthodontics orthodontic orthodontist",
    "endodontics endodontic",
    "periodontics periodontal",
    "pediatrics pediatric",
    "orthopedics orthopedic",
    "optometry optometrist optometrists",
    "medical medicine physicians",
    "dermatology",
    "chiropractic",
    "pharmacy",
    "veterinary animal",
    "law legal attorney attorneys lawyers",
    "accounting accountants cpa cpas bookkeeping",
    "insurance",
    "realty realtors realtor",
    "bank banking bancorp",
    "church parish chapel ministries",
    "school schools academy elementary preschool college university montessori",
    "daycare childcare",
    "plumbing plumbers",
    "roofing roofers",
    "hvac heating cooling",
    "electrical electric electricians",
    "mechanical",
    "construction builders excavating",
    "landscaping lawn",
    "manufacturing fabricators fabrication machining",
    "logistics freight trucking",
    "storage",
    "hardware",
    "marketing",
    "engineering",
    "golf",
    "casino",
    "apartments",
    "title",
    "sheriff",
)
TRADES = {word: group.split()[0] for group in _TRADE_WORDS for word in group.split()}

# US professional-entity forms cleanco does not know ("P.A." professional association).
EXTRA_LEGAL_SUFFIXES = {"pa", "apc", "chtd"}

_LEADING_WORDS = {"the", "dr"}  # dropped from the core key's start
_CONNECTIVES = {"and", "of"}  # dropped from the core key

_CAMEL_BOUNDARY = re.compile(r"(?<=[a-z])(?=[A-Z][a-z])")  # "BlueWave" -> "Blue Wave"
_APOSTROPHES = re.compile(r"['\u2019`]")  # "Mary's" -> "Marys", not "Mary s"
_NON_WORD = re.compile(r"[\W_]+")
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


class NameKeys(NamedTuple):
    full: str
    core: str
    legal: str  # legal form(s) cleanco strips, canonical and sorted ("inc", "co inc"), or ""


Key = TypeVar("Key", bound=Hashable)


class Suggestion(NamedTuple):
    """The best PSA company for one vendor name; `runner_up` is the next best score."""

    vendor_index: int
    psa_index: int | None  # None when there is no PSA company left to offer
    score: float
    runner_up: float

    def clears(self, threshold: float = THRESHOLD, margin: float = MARGIN) -> bool:
        return (
            self.psa_index is not None
            and self.score >= threshold
            and self.score - self.runner_up >= margin
        )


class Decision(NamedTuple):
    vendor_name: str
    psa_name: str  # "" when there is no candidate at all
    score: float | None
    decision: str  # "auto" | "suggest" | "none"


# --- keys ------------------------------------------------------------------------------------


def _clean_tokens(name: str) -> list[str]:
    text = _CAMEL_BOUNDARY.sub(" ", name)
    text = "".join(c for c in unicodedata.normalize("NFKD", text) if not unicodedata.combining(c))
    text = _APOSTROPHES.sub("", text.casefold()).replace("&", " and ")
    tokens = _join_initials(_NON_WORD.sub(" ", text).split())
    canonical = []
    for token in tokens:
        canonical.extend(TOKEN_SYNONYMS.get(token, token).split())
    return canonical


def _join_initials(tokens: list[str]) -> list[str]:
    """Runs of two or more single letters are one word: "j n r" ("J.N.R.") -> "jnr"."""
    joined: list[str] = []
    run = ""
    for token in [*tokens, ""]:
        if len(token) == 1 and token.isalpha():
            run += token
            continue
        if run:
            joined.append(run)
        run = ""
        if token:
            joined.append(token)
    return joined


def full_key(name: str) -> str:
    """Accents removed, casefolded, "&" -> "and", punctuation -> space, canonical tokens."""
    return " ".join(_clean_tokens(name))


_TERMS = prepare_default_terms()
_TERMS_BY_LAST_WORD: dict[str, list[int]] = {}
for _index, (_size, _parts) in enumerate(_TERMS):
    _TERMS_BY_LAST_WORD.setdefault(_parts[-1], []).append(_index)


def basename(name: str) -> str:
    """cleanco's basename, handed only the legal terms that can match this name.

    A term can match only if its last word is one of the name's words, so the result is the
    same as `cleanco.basename`, without trying its whole term list on every name.
    """
    words = {strip_punct(word) for word in normalized(name).split()}
    candidates = sorted({i for word in words for i in _TERMS_BY_LAST_WORD.get(word, ())})
    return custom_basename(name, [_TERMS[i] for i in candidates])


def _strip_legal(name: str) -> tuple[str, str]:
    """(name without its legal suffixes, the suffixes); cleanco reads "P.C." only unstripped."""
    name = _CONTROL.sub(" ", name)  # cleanco splits on whitespace only: "Hills\x13Inc"
    base = name
    for _ in range(2):  # twice: "Acme Company, Inc.", "Smith, P.A., Inc."
        parts = basename(base).split()
        while len(parts) > 1 and _NON_WORD.sub("", parts[-1].casefold()) in EXTRA_LEGAL_SUFFIXES:
            parts.pop()
        stripped, base = base, " ".join(parts)
        if base == stripped:
            break
    if not base:
        return name, ""
    return base, " ".join(name.split()[len(base.split()) :])


def _core_tokens(base: str) -> list[str]:
    tokens = _clean_tokens(base)
    if len(tokens) > 1 and tokens[0] in _LEADING_WORDS:
        tokens = tokens[1:]
    return [t for t in tokens if t not in _CONNECTIVES] or tokens


def _legal_tokens(suffixes: str) -> list[str]:
    return sorted(set(_clean_tokens(suffixes)) - {"and"})


def core_key(name: str) -> str:
    """The full key without legal suffixes, a leading "The" or "Dr", and "and"/"of"."""
    return " ".join(_core_tokens(_strip_legal(name)[0]))


def legal_form(name: str) -> str:
    """The legal suffixes cleanco strips, canonical and sorted: "Acme Co., Inc." -> "co inc"."""
    return " ".join(_legal_tokens(_strip_legal(name)[1]))


def name_keys(name: str) -> NameKeys:
    base, suffixes = _strip_legal(name)
    core = " ".join(_core_tokens(base))
    return NameKeys(full_key(name), core, " ".join(_legal_tokens(suffixes)))


# --- automatic mapping -----------------------------------------------------------------------


def auto_key(name: str) -> str:
    """Casefolded, whitespace collapsed: the only equality that maps without a person."""
    return " ".join(name.casefold().split())


def auto_index(names: Iterable[tuple[Key, str]]) -> dict[str, Key | None]:
    """{auto_key: id} over (id, name) pairs; None marks a key held by two different ids.

    Build it over PSA companies, and separately over confirmed aliases (alias name -> the PSA
    company a person mapped it to).
    """
    index: dict[str, Key | None] = {}
    for key_id, name in names:
        key = auto_key(name)
        index[key] = key_id if index.get(key, key_id) == key_id else None
    return index


def auto_match(
    vendor_name: str,
    index: Mapping[str, Key | None],
    aliases: Mapping[str, Key | None] | None = None,
) -> Key | None:
    """The PSA company to map to without asking, or None.

    A confirmed alias wins over a company name: a person made that choice knowingly. Never
    fuzzy, never suffix-stripped: "Acme Inc" and "Acme LLC" can be sister companies.
    """
    key = auto_key(vendor_name)
    if aliases and key in aliases:
        return aliases[key]
    return index.get(key)


# --- scores ----------------------------------------------------------------------------------


class _Side(NamedTuple):
    """What the scorer needs of one side, computed once per name rather than once per pair."""

    full: list[str]
    core: list[str]
    core_sorted: list[str]  # ratio on sorted tokens == token_sort_ratio
    tokens: list[list[str]]  # sorted core tokens
    sizes: np.ndarray
    marks: tuple[list[frozenset[str]], ...]  # legal forms, numbers, trades


def _side(keys: Sequence[NameKeys]) -> _Side:
    tokens = [sorted(k.core.split()) for k in keys]
    full_tokens = [k.full.split() for k in keys]
    return _Side(
        full=[k.full for k in keys],
        core=[k.core for k in keys],
        core_sorted=[" ".join(t) for t in tokens],
        tokens=tokens,
        sizes=np.array([len(t) for t in tokens], dtype=np.int32),
        marks=(
            [frozenset(k.legal.split()) for k in keys],
            [frozenset(t for t in f if any(map(str.isdigit, t))) for f in full_tokens],
            [frozenset(TRADES[t] for t in f if t in TRADES) for f in full_tokens],
        ),
    )


@functools.lru_cache(maxsize=16)
def _psa_side(psa: tuple[NameKeys, ...]) -> _Side:
    """The PSA side, kept while its names are the same: a mapping page compares a page of
    vendor names with every company of the organization, and the companies change only with
    a sync."""
    return _side(psa)


def _disjoint(a_sets: list[frozenset[str]], b_sets: list[frozenset[str]]) -> np.ndarray:
    """Boolean matrix: both sets are non-empty and share nothing."""
    a_distinct, b_distinct = list(set(a_sets)), list(set(b_sets))
    table = np.array(
        [[bool(a and b and a.isdisjoint(b)) for b in b_distinct] for a in a_distinct], dtype=bool
    ).reshape(len(a_distinct), len(b_distinct))
    a_code = {s: i for i, s in enumerate(a_distinct)}
    b_code = {s: i for i, s in enumerate(b_distinct)}
    return table[np.ix_([a_code[s] for s in a_sets], [b_code[s] for s in b_sets])]


def _scores(v: _Side, p: _Side) -> np.ndarray:
    options = {"scorer": fuzz.ratio, "dtype": np.float32, "workers": -1}
    core = process.cdist(v.core, p.core, **options)
    np.maximum(core, process.cdist(v.core_sorted, p.core_sorted, **options), out=core)
    scores = process.cdist(v.full, p.full, **options)
    scores += core
    scores *= 0.5
    del core
    # One side's core tokens are a strict subset of the other's: Indel distance of the sorted
    # token lists equals the difference in length.
    token_distance = process.cdist(
        v.tokens, p.tokens, scorer=Indel.distance, dtype=np.int32, workers=-1
    )
    size_difference = np.abs(v.sizes[:, None] - p.sizes[None, :])
    smaller = np.minimum(v.sizes[:, None], p.sizes[None, :])
    # A word added to a one-word name already costs the character scores much.
    conflicts = (token_distance == size_difference) & (size_difference > 0) & (smaller > 1)
    del token_distance, size_difference, smaller
    for v_sets, p_sets in zip(v.marks, p.marks, strict=True):
        conflicts |= _disjoint(v_sets, p_sets)
    scores[conflicts] -= CONFLICT_PENALTY
    return np.maximum(scores, 0.0, out=scores)


def score_matrix(vendors: Sequence[NameKeys], psa: Sequence[NameKeys]) -> np.ndarray:
    """float32 scores, one row per vendor name, one column per PSA name (see module doc)."""
    return _scores(_side(vendors), _side(psa))


def score_pair(vendor: NameKeys, psa: NameKeys) -> float:
    return float(score_matrix([vendor], [psa])[0, 0])


def best_candidates(
    vendors: Sequence[NameKeys],
    psa: Sequence[NameKeys],
    *,
    rejected: Iterable[tuple[int, int]] = (),
) -> list[Suggestion]:
    """The best and runner-up score of every vendor name, skipping rejected (vendor, psa) index
    pairs: a rejected company is neither offered nor counted as the runner-up."""
    rejected_by_vendor: dict[int, list[int]] = {}
    for vendor_index, psa_index in rejected:
        rejected_by_vendor.setdefault(vendor_index, []).append(psa_index)
    psa_side = _psa_side(tuple(psa))
    results = []
    for start in range(0, len(vendors), CHUNK_ROWS):
        chunk = vendors[start : start + CHUNK_ROWS]
        scores = _scores(_side(chunk), psa_side) if psa else np.zeros((len(chunk), 0), np.float32)
        for row in range(len(chunk)):
            skipped = rejected_by_vendor.get(start + row)
            if skipped:
                scores[row, skipped] = -np.inf
        results.extend(_top_two(scores, start))
    return results


def _top_two(scores: np.ndarray, start: int) -> list[Suggestion]:
    padded = np.pad(scores, ((0, 0), (0, 2)), constant_values=-np.inf)  # fewer than two PSA
    rows = np.arange(len(padded))
    best = padded.argmax(axis=1)
    best_scores = padded[rows, best]
    padded[rows, best] = -np.inf
    runner_up = np.maximum(padded.max(axis=1), 0.0)
    return [
        Suggestion(start + row, int(best[row]), float(best_scores[row]), float(runner_up[row]))
        if best_scores[row] > -np.inf
        else Suggestion(start + row, None, 0.0, 0.0)
        for row in range(len(padded))
    ]


def suggest(
    vendors: Sequence[NameKeys],
    psa: Sequence[NameKeys],
    *,
    threshold: float = THRESHOLD,
    margin: float = MARGIN,
    rejected: Iterable[tuple[int, int]] = (),
) -> list[Suggestion]:
    """Suggestions for the vendor names whose best PSA company clears threshold and margin."""
    candidates = best_candidates(vendors, psa, rejected=rejected)
    return [c for c in candidates if c.clears(threshold, margin)]


# --- a whole run -----------------------------------------------------------------------------


def match_names(vendor_names: Sequence[str], psa_names: Sequence[str]) -> list[Decision]:
    """One decision per vendor name, as `suggest_matches` prints them: auto-map where the rule
    allows, else the best candidate, suggested when it clears the threshold and margin."""
    index = auto_index(enumerate(psa_names))
    psa_keys = [name_keys(name) for name in psa_names]
    auto = {i: auto_match(name, index) for i, name in enumerate(vendor_names)}
    unmapped = [i for i, psa_index in auto.items() if psa_index is None]
    candidates = best_candidates([name_keys(vendor_names[i]) for i in unmapped], psa_keys)
    decisions: list[Decision | None] = [None] * len(vendor_names)
    for i, psa_index in auto.items():
        if psa_index is not None:
            score = score_pair(name_keys(vendor_names[i]), psa_keys[psa_index])
            decisions[i] = Decision(vendor_names[i], psa_names[psa_index], score, "auto")
    for i, candidate in zip(unmapped, candidates, strict=True):
        if candidate.psa_index is None:
            decisions[i] = Decision(vendor_names[i], "", None, "none")
        else:
            decision = "suggest" if candidate.clears() else "none"
            psa_name = psa_names[candidate.psa_index]
            decisions[i] = Decision(vendor_names[i], psa_name, candidate.score, decision)
    return decisions
