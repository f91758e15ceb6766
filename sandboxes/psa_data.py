"""What an MSP's PSA holds, derived deterministically from the KnowBe4 universe in `data.py`.

One `PSAUniverse` per partner, shared by the ConnectWise, Autotask and Halo sandboxes, which
render it in their own wire formats (the same ids in all three). It holds:

- companies, with the ground truth of which KnowBe4 account each one is (`kb4_customer_id`):
  "same" (the KnowBe4 name verbatim, trailing space trimmed), "variant" (the same legal entity
  spelled differently: punctuation of "Inc.", legal suffix dropped or added, "&"/"and", upper
  case, one transposed letter, "St."/"Saint", a leading "The", "Corp"/"Corporation", accents
  lost), "lookalike" (NOT the customer: a sister entity "Acme Holdings" beside "Acme Dental",
  a longer or shorter name, the same first word), and "psa_only" (no KnowBe4 account; includes
  vendor companies such as "KnowBe4, Inc."). About 8 % of the KnowBe4 accounts have no company.
- a product catalogue whose KnowBe4 names differ from KnowBe4's subscription levels, plus
  unrelated products (backup, Microsoft 365, firewall, managed services) with price and cost.
- billing containers (CW agreement / Autotask contract / Halo recurring invoice) with lines:
  the KnowBe4 seat line of the customer's level, usually at the seat count (so it differs from
  the active users), sometimes with included seats (`less_included`), split over two lines, on
  a legacy product, plus add-on lines, cancelled lines, lines Halo calculates itself
  (`calculated`), unbilled paying customers, and the unrelated lines around them.

The "bench" partner is padded (or trimmed) with unrelated lines to exactly `TARGET_LINES`.
Randomness comes from `random.Random` seeded with strings, and dates hang off
`data.UNIVERSE_DATE`, so every process builds the same universe.
"""

import datetime
import functools
import random
import re
import unicodedata
from dataclasses import dataclass

from sandboxes import data

TARGET_LINES = {"bench": 20_000}
MISSING_SHARE = 0.08  # KnowBe4 accounts the PSA holds no company for
VARIANT_SHARE = 0.25  # of the companies that are a KnowBe4 account
LOOKALIKE_SHARE = 0.06
PSA_ONLY_SHARE = 0.10


@dataclass(frozen=True)
class PSACompanyRecord:
    id: int
    name: str
    kb4_customer_id: int | None  # ground truth: the KnowBe4 account this company is
    kind: str  # "same" | "variant" | "lookalike" | "psa_only"
    detail: str  # variant: the spelling change; lookalike: the relation; psa_only: "" or "vendor"
    identifier: str  # short unique code (CW identifier, Autotask companyNumber)
    company_type: str  # "Customer" | "Prospect" | "Vendor"
    active: bool


@dataclass(frozen=True)
class Product:
    id: int
    identifier: str  # CW catalog identifier, Halo internal reference
    name: str
    category: str
    unit_price: float
    unit_cost: float
    kb4_level: str | None  # the KnowBe4 subscription level this product bills, if any
    kb4_sku: str | None  # the data.ADDON_SKUS code this product bills, if any
    active: bool = True


@dataclass(frozen=True)
class BillingLine:
    id: int
    container_id: int
    product_id: int
    quantity: int
    less_included: int
    unit_price: float
    unit_cost: float
    effective_date: datetime.date
    cancelled_date: datetime.date | None
    calculated: bool  # Halo computes the quantity (from users); not writable there
    kb4_customer_id: int | None  # ground truth: the KnowBe4 account a KnowBe4 line bills


@dataclass(frozen=True)
class BillingContainer:
    id: int
    company_id: int
    name: str
    type_name: str  # one of CONTAINER_TYPES
    status: str  # "Active" | "Cancelled" | "Expired"
    start_date: datetime.date
    end_date: datetime.date
    lines: tuple[BillingLine, ...]


@dataclass(frozen=True)
class PSAUniverse:
    partner_slug: str
    companies: tuple[PSACompanyRecord, ...]
    products: tuple[Product, ...]
    containers: tuple[BillingContainer, ...]
    missing_kb4_customer_ids: tuple[int, ...]  # KnowBe4 accounts with no PSA company

    def lines(self) -> list[BillingLine]:
        return [line for container in self.containers for line in container.lines]


CONTAINER_TYPES = ("Managed Services", "Security Awareness Training", "Microsoft 365", "Backup")
CATEGORY_NAMES = (
    "Security Awareness",
    "Managed Services",
    "Microsoft 365",
    "Backup",
    "Network",
    "Security",
)

# --- catalogue ---------------------------------------------------------------------------------

_KB4_PRODUCTS = (
    # identifier, name, level, sku, price, cost, active
    ("KB4-DIA-U", "KnowBe4 Diamond - per user", "Diamond", None, 3.75, 2.10, True),
    ("KB4-PLAT", "KMSAT Platinum Seat", "Platinum", None, 3.00, 1.70, True),
    ("KB4-GLD", "Security Awareness Training Gold (KnowBe4)", "Gold", None, 2.40, 1.35, True),
    ("KB4-SLV-A", "KnowBe4 KMSAT Silver - annual per seat", "Silver", None, 1.80, 1.00, True),
    ("KB4-BASIC", "KB4 Basic Phishing & Training", "Basic", None, 1.10, 0.60, True),
    ("KB4-GOLD-OLD", "KnowBe4 Gold (legacy 2022 pricing)", "Gold", None, 2.10, 1.25, False),
    ("KB4-PHP", "PhishER Plus add-on", None, "PHISHER_PLUS", 1.50, 0.85, True),
    ("KB4-SCOACH", "SecurityCoach - per user", None, "SECURITY_COACH", 1.20, 0.70, True),
    ("KB4-CMP", "Compliance Plus Training Library", None, "COMPLIANCE_PLUS", 0.50, 0.25, True),
)
_OTHER_PRODUCTS = (
    # identifier, name, category, price, cost, how the quantity is counted
    ("MS-USER", "Managed Services - Per User", "Managed Services", 125.00, 0.00, "user"),
    ("MS-DEVICE", "Managed Services - Per Device", "Managed Services", 45.00, 0.00, "device"),
    ("M365-BP", "Microsoft 365 Business Premium", "Microsoft 365", 22.00, 19.80, "user"),
    ("M365-BB", "Microsoft 365 Business Basic", "Microsoft 365", 6.00, 5.40, "user"),
    ("EXO-P1", "Exchange Online (Plan 1)", "Microsoft 365", 4.00, 3.60, "user"),
    ("BKP-SAAS", "Datto SaaS Protection - M365", "Backup", 3.50, 1.75, "user"),
    ("BKP-BCDR", "Datto BCDR Appliance Subscription", "Backup", 189.00, 95.00, "one"),
    ("FW-TZ370", "SonicWall TZ370 Firewall Subscription", "Network", 39.00, 22.00, "one"),
    ("HUNT-EDR", "Huntress Managed EDR", "Security", 4.50, 2.80, "device"),
    ("EMAIL-SEC", "Email Security - Proofpoint Essentials", "Security", 3.00, 1.60, "user"),
    ("DNS-RENEW", "Domain Name Renewal", "Network", 20.00, 12.00, "one"),
)
_FIRST_PRODUCT_ID = 900


@functools.cache
def catalogue() -> tuple[Product, ...]:
    """The product catalogue, identical for every partner."""
    products = [
        Product(
            _FIRST_PRODUCT_ID + i, ident, name, "Security Awareness", price, cost, level, sku, on
        )
        for i, (ident, name, level, sku, price, cost, on) in enumerate(_KB4_PRODUCTS)
    ]
    start = _FIRST_PRODUCT_ID + len(products)
    products += [
        Product(start + i, ident, name, category, price, cost, None, None)
        for i, (ident, name, category, price, cost, _) in enumerate(_OTHER_PRODUCTS)
    ]
    return tuple(products)


def _product(identifier: str) -> Product:
    return next(p for p in catalogue() if p.identifier == identifier)


_LEVEL_PRODUCT = {p[2]: p[0] for p in _KB4_PRODUCTS if p[2] and p[6]}
_SKU_PRODUCT = {p[3]: p[0] for p in _KB4_PRODUCTS if p[3]}
_COUNTING = {p[0]: p[5] for p in _OTHER_PRODUCTS}

# --- names -------------------------------------------------------------------------------------

_SUFFIX = re.compile(
    r"(,?\s+)(Inc\.?|LLC|Ltd\.?|Ltée|GmbH & Co\. KG|GmbH|AG|B\.V\.|S\.A\.|S\.L\.|S\.r\.l\.|"
    r"SARL|ApS|AB|AS|Corp\.?|Corporation|Co\.|P\.C\.|P\.A\.|PLLC|LLP)$"
)
_ADDED_SUFFIX = {"us": (", Inc.", " LLC"), "eu": (" GmbH", " B.V."), "ca": (" Inc.", " Ltd.")}
_PUNCTUATION_SWAPS = (
    (r", Inc\.$", " Inc."),
    (r" Inc\.$", " Inc"),
    (r" Inc$", " Inc."),
    (r", LLC$", " LLC"),
    (r", PLLC$", " PLLC"),
    (r" Corp$", " Corp."),
    (r" Corp\.$", " Corp"),
    (r" Ltd\.$", " Ltd"),
    (r" P\.C\.$", " PC"),
    (r" B\.V\.$", " BV"),
    (r"'s ", "s "),
)
_CORPORATE_WORDS = (
    (r" Corp\.?$", " Corporation"),
    (r" Corporation$", " Corp"),
    (r" Co\.$", " Company"),
)


def _ascii(text: str) -> str:
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(c for c in decomposed if not unicodedata.combining(c))


def _core(name: str) -> str:
    """Name without legal suffix, punctuation, case or accents: what makes two names alike."""
    stripped = _SUFFIX.sub("", name.strip()) or name
    return " ".join(re.findall(r"[a-z0-9]+", _ascii(stripped).casefold().replace("&", " and ")))


def _first_swap(name: str, swaps: tuple[tuple[str, str], ...]) -> str | None:
    for pattern, replacement in swaps:
        if re.search(pattern, name):
            return re.sub(pattern, replacement, name, count=1)
    return None


def _punctuation(name: str, rng: random.Random, region: str) -> str | None:
    return _first_swap(name, _PUNCTUATION_SWAPS)


def _suffix_dropped(name: str, rng: random.Random, region: str) -> str | None:
    stripped = _SUFFIX.sub("", name)
    return stripped if stripped != name and len(stripped) > 3 else None


def _suffix_added(name: str, rng: random.Random, region: str) -> str | None:
    if _SUFFIX.search(name):
        return None
    return name + rng.choice(_ADDED_SUFFIX.get(region, _ADDED_SUFFIX["us"]))


def _ampersand(name: str, rng: random.Random, region: str) -> str | None:
    if " & " in name:
        return name.replace(" & ", " and ", 1)
    if " and " in name:
        return name.replace(" and ", " & ", 1)
    return None


def _upper_case(name: str, rng: random.Random, region: str) -> str | None:
    return name.upper() if name.upper() != name else None


def _typo(name: str, rng: random.Random, region: str) -> str | None:
    words = name.split(" ")
    candidates = [i for i, w in enumerate(words) if len(w) >= 6 and w.isalpha()]
    if not candidates:
        return None
    index = rng.choice(candidates)
    word = words[index]
    spots = [i for i in range(1, len(word) - 2) if word[i] != word[i + 1]]
    if not spots:
        return None
    i = rng.choice(spots)
    words[index] = word[:i] + word[i + 1] + word[i] + word[i + 2 :]
    return " ".join(words)


def _saint(name: str, rng: random.Random, region: str) -> str | None:
    if "St. " in name:
        return name.replace("St. ", "Saint ", 1)
    if "Saint " in name:
        return name.replace("Saint ", "St. ", 1)
    return None


def _leading_the(name: str, rng: random.Random, region: str) -> str | None:
    return None if name.lower().startswith("the ") else "The " + name


def _corporate_word(name: str, rng: random.Random, region: str) -> str | None:
    return _first_swap(name, _CORPORATE_WORDS)


def _accents_lost(name: str, rng: random.Random, region: str) -> str | None:
    plain = _ascii(name)
    return plain if plain != name else None


# Preferred first: a name with "St." or an accent gets that change when it becomes a variant.
_VARIATIONS = (
    ("saint", _saint),
    ("accents_lost", _accents_lost),
    ("ampersand", _ampersand),
    ("punctuation", _punctuation),
    ("suffix_dropped", _suffix_dropped),
    ("suffix_added", _suffix_added),
    ("upper_case", _upper_case),
    ("typo", _typo),
    ("leading_the", _leading_the),
    ("corporate_word", _corporate_word),
)
_SISTER_WORDS = ("Holdings", "Properties", "Capital", "Foundation", "Realty", "Ventures")
_LONGER_TAILS = ("Billing Services", "Foundation", "Real Estate LLC", "Staffing", "Pharmacy")
_OTHER_TRADES = ("Landscaping", "Auto Repair", "Dermatology", "Roofing", "Insurance Group")
_PSA_ONLY_TEMPLATES = (
    "{s} Landscaping",
    "{p} Dermatology",
    "{s} Auto Repair",
    "{p} Roofing & Siding",
    "{s} Financial Advisors",
    "{p} Pediatrics",
    "{s} Chiropractic",
    "{p} Storage Solutions",
    "{s} Brewing Company",
    "{p} Title & Escrow",
    "{s} Architects",
    "{p} Yacht Club",
)
_PSA_ONLY_SURNAMES = [
    "Ashford",
    "Bramley",
    "Corwin",
    "Dalton",
    "Everly",
    "Forsythe",
    "Garrison",
    "Hartley",
    "Ingram",
    "Jarvis",
    "Kendrick",
    "Langley",
    "Merriweather",
    "Norwood",
    "Oakes",
    "Pembroke",
    "Quimby",
    "Radcliffe",
    "Sterling",
    "Thackeray",
    "Upton",
    "Vickery",
    "Wainwright",
    "Yardley",
]
_PSA_ONLY_PLACES = [
    "Amber Hill",
    "Beacon Bay",
    "Copper Creek",
    "Dover Point",
    "Elm Harbor",
    "Foxborough",
    "Glen Abbey",
    "Hazelwood",
    "Ivy Ridge",
    "Juniper Flats",
    "Kestrel Point",
    "Larkspur",
    "Millbrook",
    "Northgate",
]
_VENDORS = ("KnowBe4, Inc.", "Pax8", "Microsoft Corporation", "Datto, Inc.", "Ingram Micro")


def _lookalike(name: str, rng: random.Random) -> tuple[str, str]:
    """A different organisation whose name resembles `name`, and how it resembles it."""
    core_words = (_SUFFIX.sub("", name.strip()) or name).split()
    head = " ".join(core_words[:2]) if core_words[0] in ("St.", "The", "Law") else core_words[0]
    options = [
        ("sister", f"{head} {rng.choice(_SISTER_WORDS)}"),
        ("longer", f"{' '.join(core_words)} {rng.choice(_LONGER_TAILS)}"),
        ("same_first_word", f"{head} {rng.choice(_OTHER_TRADES)}"),
    ]
    if len(core_words) >= 3:
        options.append(("shorter", " ".join(core_words[:2])))
    return rng.choice(options)


def _identifier(name: str, taken: set[str]) -> str:
    words = re.findall(r"[A-Za-z0-9]+", _ascii(name))
    base = "".join(w[:1].upper() + w[1:] for w in words)[:20] or "Company"
    identifier, n = base, 2
    while identifier.casefold() in taken:
        identifier, n = f"{base}{n}", n + 1
    taken.add(identifier.casefold())
    return identifier


# --- companies ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class _CompanySpec:
    name: str
    kb4: data.Customer | None
    kind: str
    detail: str
    company_type: str
    active: bool


def _variant(
    customer: data.Customer, rng: random.Random, region: str, used: set[str]
) -> tuple[str, str] | None:
    name = customer.name.strip()
    applicable = [(label, f(name, rng, region)) for label, f in _VARIATIONS]
    own = name.casefold()
    applicable = [
        (label, v)
        for label, v in applicable
        if v and (v.casefold() not in used or v.casefold() == own)
    ]
    if not applicable:
        return None
    if applicable[0][0] in ("saint", "accents_lost") and rng.random() < 0.7:
        return applicable[0]
    return rng.choice(applicable)


def _customer_company(
    customer: data.Customer, vary: bool, rng: random.Random, region: str, used: set[str]
) -> _CompanySpec:
    name, kind, detail = customer.name.strip(), "same", ""
    if vary:
        found = _variant(customer, rng, region, used)
        if found:
            kind, (detail, name) = "variant", found
    used.add(name.casefold())
    if customer.billing_type == "TRIAL" and rng.random() < 0.5:
        company_type = "Prospect"
    else:
        company_type = "Customer"
    active = not (customer.archived and rng.random() < 0.6)
    return _CompanySpec(name, customer, kind, detail, company_type, active)


def _lookalikes(
    held: list[data.Customer], count: int, rng: random.Random, used: set[str], kb4_cores: set[str]
) -> list[_CompanySpec]:
    """Organisations resembling customers the PSA holds, but none of the KnowBe4 accounts."""
    specs: list[_CompanySpec] = []
    for customer in rng.sample(held, len(held)):
        if len(specs) == count:
            break
        relation, name = _lookalike(customer.name, rng)
        if name.casefold() in used or _core(name) in kb4_cores:
            continue
        used.add(name.casefold())
        company_type = "Customer" if rng.random() < 0.8 else "Prospect"
        specs.append(_CompanySpec(name, None, "lookalike", relation, company_type, True))
    return specs


def _psa_only(count: int, rng: random.Random, used: set[str], kb4_cores: set[str]):
    specs = [_CompanySpec(v, None, "psa_only", "vendor", "Vendor", True) for v in _VENDORS]
    used.update(v.casefold() for v in _VENDORS)
    for _ in range(count * 50):
        if len(specs) >= count:
            break
        name = rng.choice(_PSA_ONLY_TEMPLATES).format(
            s=rng.choice(_PSA_ONLY_SURNAMES), p=rng.choice(_PSA_ONLY_PLACES)
        )
        if name.casefold() in used:
            name = f"{name} of {rng.choice(_PSA_ONLY_PLACES)}"
        if name.casefold() in used or _core(name) in kb4_cores:
            continue
        used.add(name.casefold())
        company_type = rng.choices(("Customer", "Prospect"), (85, 15))[0]
        specs.append(_CompanySpec(name, None, "psa_only", "", company_type, rng.random() > 0.05))
    return specs


def _company_specs(slug: str, rng: random.Random) -> tuple[list[_CompanySpec], list[int]]:
    customers = data.customers(slug)
    region = data.partner_by_slug(slug).region
    missing = rng.sample(customers, round(len(customers) * MISSING_SHARE))
    missing_ids = {c.id for c in missing}
    used = {c.name.strip().casefold() for c in customers}
    held = [c for c in customers if c.id not in missing_ids]
    varied = {c.id for c in rng.sample(held, round(len(held) * VARIANT_SHARE))}
    specs = [_customer_company(c, c.id in varied, rng, region, used) for c in held]
    kb4_cores = {_core(c.name) for c in customers}
    specs += _lookalikes(held, round(len(customers) * LOOKALIKE_SHARE), rng, used, kb4_cores)
    specs += _psa_only(round(len(customers) * PSA_ONLY_SHARE), rng, used, kb4_cores)
    rng.shuffle(specs)
    return specs, sorted(missing_ids)


# --- billing -----------------------------------------------------------------------------------


@dataclass
class _LineSpec:
    product: Product
    quantity: int
    less_included: int = 0
    effective_date: datetime.date | None = None
    cancelled_date: datetime.date | None = None
    calculated: bool = False
    kb4_customer_id: int | None = None


@dataclass
class _ContainerSpec:
    company: PSACompanyRecord
    name: str
    type_name: str
    status: str
    start_date: datetime.date
    end_date: datetime.date
    kb4_lines: list[_LineSpec]
    other_lines: int  # how many unrelated lines to generate
    headcount: int  # users the unrelated per-user lines are counted on


def _days_before(day: datetime.date, rng: random.Random, low: int, high: int) -> datetime.date:
    return day - datetime.timedelta(days=rng.randint(low, high))


def _seat_quantity(customer: data.Customer, rng: random.Random) -> int:
    seats = customer.seats or customer.active_users
    roll = rng.random()
    if roll < 0.60:
        return seats
    if roll < 0.80:
        return customer.active_users  # trued up at the last review
    if roll < 0.95:
        return max(1, seats + rng.randint(-5, 5))
    return -(-seats // 25) * 25  # sold in packs of 25


def _kb4_lines(customer: data.Customer, rng: random.Random, start: datetime.date):
    """The KnowBe4 lines billing a paying customer (may be empty: an unbilled customer)."""
    if customer.billing_type != "PAID" or rng.random() < 0.03:
        return []
    identifier = _LEVEL_PRODUCT[customer.subscription_level]
    if customer.subscription_level == "Gold" and rng.random() < 0.15:
        identifier = "KB4-GOLD-OLD"
    quantity = _seat_quantity(customer, rng)
    level = _LineSpec(_product(identifier), quantity, kb4_customer_id=customer.id)
    if rng.random() < 0.10:
        level.less_included = max(0, min(quantity - 1, rng.choice((5, 10, 25))))
    level.calculated = rng.random() < 0.08
    lines = [level]
    if quantity >= 20 and rng.random() < 0.04:  # billed per department on two lines
        second = rng.randint(1, quantity - 1)
        level.quantity, level.less_included = quantity - second, 0
        lines.append(_LineSpec(level.product, second, kb4_customer_id=customer.id))
    for sku in customer.skus:
        addon_quantity = quantity if rng.random() < 0.7 else customer.active_users
        lines.append(
            _LineSpec(_product(_SKU_PRODUCT[sku]), addon_quantity, kb4_customer_id=customer.id)
        )
    if rng.random() < 0.06:  # the level it was on before an upgrade, cancelled
        old_level = rng.choice([lv for lv in _LEVEL_PRODUCT if lv != customer.subscription_level])
        cancelled = _days_before(data.UNIVERSE_DATE, rng, 30, 300)
        lines.append(
            _LineSpec(
                _product(_LEVEL_PRODUCT[old_level]),
                customer.seats or quantity,
                effective_date=start,
                cancelled_date=max(cancelled, start + datetime.timedelta(days=1)),
                kb4_customer_id=customer.id,
            )
        )
    return lines


def _active_end(rng: random.Random) -> datetime.date:
    return datetime.date(data.UNIVERSE_DATE.year + rng.randint(2, 4), 12, 31)


def _containers_of(company: PSACompanyRecord, customer, rng) -> list[_ContainerSpec]:
    if company.company_type != "Customer":
        return []
    if customer is not None:
        start = max(customer.created_at.date(), _days_before(data.UNIVERSE_DATE, rng, 60, 1500))
        headcount = customer.active_users
    else:
        start = _days_before(data.UNIVERSE_DATE, rng, 60, 2000)
        headcount = rng.randint(5, 120)
    kb4 = _kb4_lines(customer, rng, start) if customer else []
    if customer is None and rng.random() < 0.12:  # billed KnowBe4 with no KnowBe4 account
        kb4 = [_LineSpec(_product(rng.choice(list(_LEVEL_PRODUCT.values()))), headcount)]
    status, end = "Active", _active_end(rng)
    if customer is not None and customer.archived:  # the customer left: everything cancelled
        status = "Cancelled"
        end = customer.subscription_end or _days_before(data.UNIVERSE_DATE, rng, 30, 300)
        start = min(start, end - datetime.timedelta(days=365))
        for line in kb4:
            line.effective_date = start
            line.cancelled_date = line.cancelled_date or end
    common = {"company": company, "status": status, "start_date": start, "end_date": end}
    managed = _ContainerSpec(
        name=f"{company.name} - Managed Services",
        type_name="Managed Services",
        kb4_lines=[],
        other_lines=rng.randint(1, 4),
        headcount=headcount,
        **common,
    )
    if kb4 and rng.random() < 0.45:  # KnowBe4 billed on an agreement of its own
        security = _ContainerSpec(
            name=f"{company.name} - Security Awareness",
            type_name="Security Awareness Training",
            kb4_lines=kb4,
            other_lines=0,
            headcount=headcount,
            **common,
        )
        return [security, managed] if rng.random() < 0.8 else [security]
    managed.kb4_lines = kb4
    if customer is None and rng.random() < 0.08:
        managed.status, managed.end_date = "Expired", _days_before(data.UNIVERSE_DATE, rng, 10, 400)
    return [managed]


def _fit_to_target(specs: list[_ContainerSpec], target: int) -> None:
    """Add or remove unrelated lines, round robin, until the line total is exactly `target`."""
    total = sum(len(s.kb4_lines) + s.other_lines for s in specs)
    step = 1 if target > total else -1
    while total != target:
        before = total
        for spec in specs:
            if total == target:
                break
            if step < 0 and spec.other_lines == 0:
                continue
            spec.other_lines += step
            total += step
        if total == before:
            raise ValueError(f"cannot reach {target} lines: the KnowBe4 lines alone are {total}")


def _other_line(spec: _ContainerSpec, rng: random.Random) -> _LineSpec:
    product = _product(rng.choice(_OTHER_PRODUCTS)[0])
    counting = _COUNTING[product.identifier]
    if counting == "user":
        quantity = max(1, spec.headcount + rng.randint(-3, 3))
    elif counting == "device":
        quantity = max(1, round(spec.headcount * rng.uniform(0.8, 1.4)))
    else:
        quantity = 1
    return _LineSpec(product, quantity)


def _materialise(spec: _ContainerSpec, container_id: int, first_line_id: int, rng):
    lines = []
    for offset, line in enumerate(
        spec.kb4_lines + [_other_line(spec, rng) for _ in range(spec.other_lines)]
    ):
        effective = line.effective_date or spec.start_date
        price = (
            line.product.unit_price
            if rng.random() < 0.85
            else round(line.product.unit_price * 0.9, 2)
        )
        lines.append(
            BillingLine(
                id=first_line_id + offset,
                container_id=container_id,
                product_id=line.product.id,
                quantity=line.quantity,
                less_included=line.less_included,
                unit_price=price,
                unit_cost=line.product.unit_cost,
                effective_date=effective,
                cancelled_date=line.cancelled_date,
                calculated=line.calculated,
                kb4_customer_id=line.kb4_customer_id,
            )
        )
    return BillingContainer(
        id=container_id,
        company_id=spec.company.id,
        name=spec.name,
        type_name=spec.type_name,
        status=spec.status,
        start_date=spec.start_date,
        end_date=spec.end_date,
        lines=tuple(lines),
    )


# --- the universe ------------------------------------------------------------------------------


@functools.cache
def universe(partner_slug: str) -> PSAUniverse:
    """The PSA side of one partner. Raises KeyError for an unknown slug."""
    rng = random.Random(f"trueup-sandbox/psa/{partner_slug}")
    specs, missing = _company_specs(partner_slug, rng)
    by_id = {c.id: c for c in data.customers(partner_slug)}
    companies, taken, next_id = [], set(), 250
    for spec in specs:
        companies.append(
            PSACompanyRecord(
                id=next_id,
                name=spec.name,
                kb4_customer_id=spec.kb4.id if spec.kb4 else None,
                kind=spec.kind,
                detail=spec.detail,
                identifier=_identifier(spec.name, taken),
                company_type=spec.company_type,
                active=spec.active,
            )
        )
        next_id += rng.randint(1, 3)
    container_specs = [
        container
        for company in companies
        for container in _containers_of(company, by_id.get(company.kb4_customer_id), rng)
    ]
    if partner_slug in TARGET_LINES:
        _fit_to_target(container_specs, TARGET_LINES[partner_slug])
    containers, line_id = [], 10_000
    for number, spec in enumerate(container_specs):
        container = _materialise(spec, 100 + number, line_id, rng)
        containers.append(container)
        line_id += len(container.lines)
    return PSAUniverse(
        partner_slug, tuple(companies), catalogue(), tuple(containers), tuple(missing)
    )


def ground_truth(partner_slug: str) -> dict[int, int | None]:
    """PSA company id -> the KnowBe4 account id it is, or None."""
    return {c.id: c.kb4_customer_id for c in universe(partner_slug).companies}


def kb4_products() -> dict[int, Product]:
    """Catalogue products that bill KnowBe4 (a level or an add-on), by id."""
    return {p.id: p for p in catalogue() if p.kb4_level or p.kb4_sku}


# --- how the PSAs' SQL Server stores compare values ---------------------------------------------

_ISO_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}")


def parse_instant(value) -> datetime.datetime | None:
    """An ISO date or datetime string (naive = UTC) as an aware datetime, else None."""
    if not isinstance(value, str) or not _ISO_DATE.match(value):
        return None
    try:
        parsed = datetime.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=datetime.UTC)


def _like(pattern: str) -> re.Pattern:
    parts = (".*" if c == "%" else "." if c == "_" else re.escape(c) for c in pattern)
    return re.compile("".join(parts), re.IGNORECASE | re.DOTALL)


def _ordered(op: str, a, b) -> bool:
    return {"eq": a == b, "ne": a != b, "lt": a < b, "le": a <= b, "gt": a > b, "ge": a >= b}[op]


def compare(actual, op: str, expected) -> bool:
    """Whether `actual <op> expected` holds, as the PSAs' SQL Server databases decide it.

    ops: eq ne lt le gt ge contains beginswith endswith like. Strings compare case-insensitively,
    ISO date strings as instants, numbers as numbers; NULL only equals NULL, and a NULL field
    fails every other test (SQL's unknown).
    """
    if expected is None:
        return {"eq": actual is None, "ne": actual is not None}.get(op, False)
    if actual is None:
        return False
    if isinstance(expected, datetime.datetime) or (
        parse_instant(expected) and parse_instant(actual)
    ):
        when = expected if isinstance(expected, datetime.datetime) else parse_instant(expected)
        actual_when = parse_instant(actual)
        return actual_when is not None and _ordered(op, actual_when, when)
    if isinstance(expected, bool) or isinstance(actual, bool):
        return op in ("eq", "ne") and _ordered(op, str(actual).lower(), str(expected).lower())
    if isinstance(actual, int | float) and op in ("eq", "ne", "lt", "le", "gt", "ge"):
        try:
            return _ordered(op, actual, float(expected))
        except ValueError:
            return False
    a, e = str(actual).casefold(), str(expected).casefold()
    if op == "contains":
        return e in a
    if op == "beginswith":
        return a.startswith(e)
    if op == "endswith":
        return a.endswith(e)
    if op == "like":
        return _like(e).fullmatch(a) is not None
    return _ordered(op, a, e)
