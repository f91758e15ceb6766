"""The customer universe every sandbox serves.

One deterministic set of MSP partners and their KnowBe4 customer accounts. The KnowBe4 sandbox
serves it as it is; the PSA sandboxes derive their companies and billed quantities from it, so a
reconciliation run finds the same customers on both sides.

Determinism: every value comes from a `random.Random` seeded with a string (string seeds go
through SHA-512, so they do not depend on PYTHONHASHSEED), keys are hashes of fixed strings, and
dates are spread around the fixed UNIVERSE_DATE rather than today. The same code gives the same
universe in every process and on every day.
"""

import base64
import datetime
import functools
import hashlib
import random
import re
import unicodedata
from dataclasses import dataclass


@dataclass(frozen=True)
class Partner:
    key: str  # the KnowBe4 partner Product API token for this partner
    slug: str  # "demo", "northwind", "bench", ...
    name: str  # the MSP's name
    region: str  # "us" | "eu" | "ca" | "uk" | "de": the key only works on its region
    size: int  # number of customer accounts


@dataclass(frozen=True)
class Customer:
    id: int  # KnowBe4 account id, unique across the universe, stable between runs
    name: str  # companyName as the KnowBe4 account holds it
    display_name: str
    domain: str
    partner: str  # Partner.slug
    billing_type: str  # "PAID" | "TRIAL" | "FREE"
    archived: bool
    subscription_level: str  # "Diamond" | "Platinum" | "Gold" | "Silver" | "Basic"
    seats: int | None  # licensed seats (None for some trials)
    active_users: int  # active (non-archived) users: the number TrueUp bills on
    archived_users: int
    subscription_end: datetime.date | None
    trial_expiration: datetime.date | None
    created_at: datetime.datetime
    skus: tuple[str, ...]  # add-on SKU codes purchased, e.g. ("PHISHER_PLUS",); may be empty


REGIONS = ("us", "eu", "ca", "uk", "de")

# Dates are generated around this day, not around today, so that the data never changes.
UNIVERSE_DATE = datetime.date(2026, 11, 1)

ADDON_SKUS = {
    "PHISHER_PLUS": "PhishER Plus",
    "SECURITY_COACH": "SecurityCoach",
    "COMPLIANCE_PLUS": "Compliance Plus",
}

# The tiers that include the APIs ("Our APIs are available to Platinum and Diamond customers").
API_LEVELS = frozenset({"Diamond", "Platinum"})


def _token(*parts: str) -> str:
    """A deterministic 64-character base64url token, random-looking like a real API token."""
    digest = hashlib.sha512("/".join(("trueup-sandbox", *parts)).encode()).digest()
    return base64.urlsafe_b64encode(digest[:48]).decode()


def _partner_key(slug: str) -> str:
    if slug == "demo":
        # Short and readable: it is printed by `make run` and typed into the demo by hand.
        return "kb4-demo-" + hashlib.sha256(b"trueup-sandbox/demo").hexdigest()[:32]
    return _token("knowbe4", "partner", slug)


def reporting_key(customer: Customer) -> str:
    """The Reporting API key of one customer account (Reporting keys are per tenant)."""
    return _token("knowbe4", "reporting", str(customer.id))


# slug, MSP name, region, number of customers, first account id of the partner's id range
_PARTNER_SPECS = (
    ("demo", "Summit Ridge Technology Partners", "us", 160, 1_000_000),
    ("northwind", "Northwind Managed Services B.V.", "eu", 150, 2_000_000),
    ("maple", "Maple Leaf Managed IT Inc.", "ca", 150, 3_000_000),
    ("bench", "Benchmark Managed Services LLC", "us", 5000, 4_000_000),
    ("revoked", "Revoked Key MSP LLC", "us", 25, 5_000_000),
    ("flaky", "Flaky Uplink IT LLC", "us", 150, 6_000_000),
    ("slow", "Slowpoke Systems Inc.", "us", 150, 7_000_000),
    ("throttled", "Throttle Bottle IT Inc.", "us", 150, 8_000_000),
)
_ID_BASES = {slug: base for slug, _, _, _, base in _PARTNER_SPECS}

PARTNERS: dict[str, Partner] = {
    _partner_key(slug): Partner(_partner_key(slug), slug, name, region, size)
    for slug, name, region, size, _ in _PARTNER_SPECS
}
DEMO_PARTNER_KEY = _partner_key("demo")


def partner_by_slug(slug: str) -> Partner:
    for partner in PARTNERS.values():
        if partner.slug == slug:
            return partner
    raise KeyError(slug)


# --- names -------------------------------------------------------------------------------------

_US_SURNAMES = (
    "Abernathy",
    "Anderson",
    "Baker",
    "Bennett",
    "Blackwell",
    "Brooks",
    "Caldwell",
    "Carter",
    "Castillo",
    "Chen",
    "Collins",
    "Delgado",
    "Donnelly",
    "Dunn",
    "Ellis",
    "Esposito",
    "Fischer",
    "Fitzgerald",
    "Foster",
    "Garcia",
    "Goldberg",
    "Gray",
    "Hale",
    "Harper",
    "Hayes",
    "Henderson",
    "Hollis",
    "Holt",
    "Hughes",
    "Iverson",
    "Jensen",
    "Keller",
    "Kim",
    "Kowalski",
    "Lawson",
    "Lopez",
    "Maddox",
    "McAllister",
    "Meyer",
    "Morgan",
    "Nguyen",
    "Novak",
    "O'Brien",
    "O'Neill",
    "Okafor",
    "Patel",
    "Petrov",
    "Porter",
    "Quinn",
    "Ramirez",
    "Reyes",
    "Rosenthal",
    "Russo",
    "Schaefer",
    "Shah",
    "Stein",
    "Sullivan",
    "Tanaka",
    "Taylor",
    "Thornton",
    "Underwood",
    "Vance",
    "Vasquez",
    "Walsh",
    "Webb",
    "Whitaker",
    "Whitfield",
    "Yamamoto",
    "Zimmerman",
)
_US_PLACES = (
    "Bayside",
    "Blue Ridge",
    "Canyon",
    "Cedar Valley",
    "Clearwater",
    "Coastal",
    "Eagle Rock",
    "Evergreen",
    "Fairview",
    "Gateway",
    "Granite Falls",
    "Greenfield",
    "Harbor Point",
    "Heartland",
    "Hillcrest",
    "Ironwood",
    "Juniper",
    "Kingsport",
    "Lakeview",
    "Lone Star",
    "Maple Grove",
    "Meadowbrook",
    "Mid-Valley",
    "North Shore",
    "Oak Ridge",
    "Palmetto",
    "Pine Bluff",
    "Prairie",
    "Red Hawk",
    "Riverside",
    "Sandpoint",
    "Silver Lake",
    "Stonebridge",
    "Summit",
    "Sunset",
    "Three Rivers",
    "Tri-County",
    "Twin Rivers",
    "Westfield",
    "Willow Creek",
)
_SAINTS = (
    "Andrew",
    "Anne",
    "Augustine",
    "Catherine",
    "Francis",
    "John",
    "Joseph",
    "Jude",
    "Luke",
    "Mary",
    "Michael",
    "Monica",
    "Patrick",
    "Paul",
    "Peter",
    "Thomas",
)
_FIRST_NAMES = (
    "Carlos",
    "Daniel",
    "Elena",
    "Grace",
    "James",
    "Marcus",
    "Maria",
    "Priya",
    "Robert",
    "Susan",
)
_US_SUFFIXES = (" Inc", " Inc.", ", Inc.", " LLC", ", LLC", " Corp", " Co.", "", "", "")
_US_TEMPLATES = (
    "{s1} Family Dentistry",
    "{p} Dental Group{sfx}",
    "{s1} Dental Care, P.C.",
    "{s1} & {s2} Law",
    "{s1}, {s2} & {s3} LLP",
    "Law Offices of {first} {s1}",
    "{s1} Law Group, P.C.",
    "{s1} & {s2}, PLLC",
    "{p} Heating & Air{sfx}",
    "{s1} HVAC Services{sfx}",
    "{s1} Mechanical{sfx}",
    "{s1} & Associates CPAs",
    "{s1} {s2} CPA, PLLC",
    "{p} Tax & Accounting{sfx}",
    "{p} Veterinary Clinic",
    "{p} Animal Hospital",
    "Paws & Claws Vet of {p}",
    "{p} Unified School District",
    "St. {saint} Catholic School",
    "{p} Montessori Academy",
    "{p} Christian Academy",
    "{s1} Construction Co.",
    "{s1} Builders{sfx}",
    "{p} Concrete & Paving{sfx}",
    "{p} Community Credit Union",
    "{p} Federal Credit Union",
    "St. {saint}'s Episcopal Church",
    "First Baptist Church of {p}",
    "{p} Community Church",
    "{s1} Precision Machining{sfx}",
    "{p} Plastics{sfx}",
    "{s1} Manufacturing Corp",
    "{s1} Tool & Die{sfx}",
    "{s1} & Sons Plumbing",
    "{p} Plumbing & Drain{sfx}",
    "{p} Family Medicine, P.A.",
    "{p} Orthopedics{sfx}",
    "{s1} Eye Care{sfx}",
    "{s1} Insurance Agency{sfx}",
    "{p} Realty Group{sfx}",
    "{s1} Logistics{sfx}",
    "{p} Freight Lines{sfx}",
    "{p} Food Bank",
    "{p} Humane Society",
    "{n} Main Street Partners{sfx}",
    "Route {n} Auto Body{sfx}",
    "{i1}.{i2}.{i3}. Holdings{sfx}",
    "{i1}&{i2} Electric{sfx}",
    "{i1}{i2}{i3} Industries, Inc.",
)

_EU_SURNAMES = (
    "Bakker",
    "Bianchi",
    "Conti",
    "Costa",
    "Dubois",
    "Fernández",
    "Ferreira",
    "Fischer",
    "García",
    "Horváth",
    "Janssen",
    "Kowalczyk",
    "Laurent",
    "Lefèvre",
    "Lindqvist",
    "Moreau",
    "Müller",
    "Møller",
    "Novák",
    "Nowak",
    "O'Connor",
    "Papadopoulos",
    "Rossi",
    "Ruiz",
    "Schneider",
    "Svensson",
    "Sørensen",
    "Visser",
    "Weber",
    "Wójcik",
)
_EU_PLACES = (
    "Aarhus",
    "Antwerpen",
    "Bologna",
    "Brno",
    "Düsseldorf",
    "Genève",
    "Göteborg",
    "Graz",
    "Köln",
    "Kraków",
    "Liège",
    "Lyon",
    "Málaga",
    "Malmö",
    "München",
    "Nîmes",
    "Porto",
    "Rotterdam",
    "Sevilla",
    "Utrecht",
    "Zürich",
    "Łódź",
)
_EU_SUFFIXES = (" GmbH", " AG", " B.V.", " S.A.", " S.r.l.", " SARL", " Ltd", " ApS", " AB", "")
_EU_TEMPLATES = (
    "{p} Dental AG",
    "Zahnarztpraxis Dr. {s1}",
    "Cabinet {s1} Avocats",
    "{s1} & {s2} Advocaten",
    "{s1} Haustechnik GmbH",
    "{s1} Steuerberatung GmbH",
    "Tierklinik {p}",
    "Clínica Veterinaria {p} S.L.",
    "{s1} Bouw B.V.",
    "{s1} Costruzioni S.r.l.",
    "{p} Logistics{sfx}",
    "{s1} Maschinenbau AG",
    "{s1} Kunststoffe GmbH",
    "Boulangerie {s1}",
    "{p} International School",
    "{s1} & {s2} Accountants{sfx}",
    "Hotel {p} {s1}{sfx}",
    "{s1} Elektrotechnik GmbH & Co. KG",
    "{i1}.{i2}. {s1} Consulting{sfx}",
    "{p} {n} Immobilien GmbH",
)

_CA_SURNAMES = (
    "Bergeron",
    "Bélanger",
    "Boucher",
    "Bouchard",
    "Campbell",
    "Chan",
    "Côté",
    "Fortin",
    "Fraser",
    "Gagné",
    "Gagnon",
    "Gauthier",
    "Girard",
    "Lavoie",
    "Leblanc",
    "Lévesque",
    "MacDonald",
    "MacLeod",
    "Morin",
    "Ouellet",
    "Paquette",
    "Pelletier",
    "Roy",
    "Simard",
    "Singh",
    "Stewart",
    "Thompson",
    "Tremblay",
    "Wilson",
    "Wong",
)
_CA_PLACES = (
    "Gatineau",
    "Halifax",
    "Kamloops",
    "Kelowna",
    "Kingston",
    "Laval",
    "Lethbridge",
    "Lévis",
    "Moncton",
    "Montréal",
    "Prince George",
    "Québec",
    "Red Deer",
    "Rimouski",
    "Saguenay",
    "Saint John",
    "Sherbrooke",
    "Sudbury",
    "Thunder Bay",
    "Trois-Rivières",
)
_CA_SUFFIXES = (" Inc.", " Ltd.", " Ltée", " Corp.", "")
_CA_TEMPLATES = (
    "Clinique dentaire {p}",
    "{s1} Dental Centre{sfx}",
    "{s1} & {s2} Avocats",
    "{s1} Law Corporation",
    "Chauffage {s1} Inc.",
    "{p} Heating & Cooling Ltd.",
    "{s1} CPA Inc.",
    "Clinique vétérinaire {p}",
    "{p} Veterinary Hospital",
    "École St. {saint}",
    "{p} Catholic District School Board",
    "Construction {s1} Ltée",
    "{s1} Contracting Ltd.",
    "Caisse populaire de {p}",
    "{p} Credit Union",
    "{s1} Fabrication{sfx}",
    "{p} Plastics Ltd.",
    "Plomberie {s1} & Fils",
    "{p} Physiotherapy{sfx}",
    "{i1}.{i2}.{i3}. Holdings Ltd.",
)

_POOLS = {
    "us": (_US_SURNAMES, _US_PLACES, _US_SUFFIXES, _US_TEMPLATES),
    "eu": (_EU_SURNAMES, _EU_PLACES, _EU_SUFFIXES, _EU_TEMPLATES),
    "ca": (_CA_SURNAMES, _CA_PLACES, _CA_SUFFIXES, _CA_TEMPLATES),
}

# Names that exercise matching and rendering: accents, ampersands, initials, digits, a near
# duplicate pair (Acme) and a trailing space, as real consoles hold them.
_SPECIAL_NAMES = {
    "demo": (
        "Café Lumière",
        "Zürich Dental AG",
        "Société Générale de Nettoyage",
        "Ñandú Logistics",
        "Baker & Taylor Law",
        "Smith & Sons Plumbing",
        "J.N.R. Holdings",
        "St. Mary's Catholic Church",
        "3 Rivers Credit Union",
        "A1 Septic & Drain, LLC",
        "Acme Corp",
        "ACME Corporation",
        "O'Brien & O'Neill, PLLC",
        "Harbor Point Marina ",
    ),
    "northwind": (
        "Société Générale de Nettoyage",
        "Bäckerei Müller & Söhne GmbH",
        "Ødegaard Shipping AS",
        "Café Lumière SARL",
        "Straße 12 Architekten GmbH",
    ),
    "maple": ("Café Lumière", "Dépanneur Côté & Fils", "Ñandú Logistics Canada Ltd."),
}

_LEGAL_SUFFIX = re.compile(
    r",?\s+(Inc\.?|LLC|Ltd\.?|Ltée|GmbH( & Co\. KG)?|AG|S\.A\.|S\.L\.|S\.r\.l\.|SARL|B\.V\.|ApS|AB|"
    r"AS|Corp\.?|Corporation|Co\.|P\.C\.|P\.A\.|PLLC|LLP)$"
)
_DOMAIN_STOPWORDS = frozenset(
    [
        "inc",
        "llc",
        "ltd",
        "ltee",
        "corp",
        "corporation",
        "co",
        "pc",
        "pa",
        "pllc",
        "llp",
        "gmbh",
        "kg",
        "ag",
        "sa",
        "sl",
        "srl",
        "sarl",
        "bv",
        "aps",
        "ab",
        "as",
        "the",
        "of",
        "and",
        "de",
        "la",
        "le",
        "du",
        "des",
    ]
)
_FOLD = str.maketrans({"ß": "ss", "ø": "o", "Ø": "O", "ł": "l", "Ł": "L", "æ": "ae", "œ": "oe"})
_TLDS = {"us": (".com", ".com", ".com", ".net"), "eu": (".eu", ".de", ".nl", ".fr", ".ch", ".it")}
_TLDS.update(ca=(".ca", ".ca", ".com"), uk=(".co.uk",), de=(".de",))
_ORG_WORDS = ("church", "school", "academy", "credit union", "food bank", "humane", "district")


def _ascii(text: str) -> str:
    decomposed = unicodedata.normalize("NFKD", text.translate(_FOLD))
    return "".join(c for c in decomposed if not unicodedata.combining(c))


def _random_name(rng: random.Random, region: str) -> str:
    surnames, places, suffixes, templates = _POOLS.get(region, _POOLS["us"])
    s1, s2, s3 = rng.sample(surnames, 3)
    letters = "ABCDEFGHJKLMNPRSTW"
    return rng.choice(templates).format(
        s1=s1,
        s2=s2,
        s3=s3,
        p=rng.choice(places),
        saint=rng.choice(_SAINTS),
        first=rng.choice(_FIRST_NAMES),
        sfx=rng.choice(suffixes),
        n=rng.choice((2, 3, 7, 12, 21, 40, 66, 101, 360)),
        i1=rng.choice(letters),
        i2=rng.choice(letters),
        i3=rng.choice(letters),
    )


def _domain(rng: random.Random, name: str, region: str, taken: set[str]) -> str:
    base = _LEGAL_SUFFIX.sub("", name.strip()).replace("'", "")
    words = [
        w for w in re.findall(r"[a-z0-9]+", _ascii(base).lower()) if w not in _DOMAIN_STOPWORDS
    ]
    words = words[:3] or ["company"]
    label = "-".join(words) if rng.random() < 0.3 else "".join(words)
    if region == "us" and any(w in name.lower() for w in _ORG_WORDS):
        tld = ".org"
    else:
        tld = rng.choice(_TLDS[region])
    domain = label + tld
    n = 2
    while domain in taken:
        domain = f"{label}{n}{tld}"
        n += 1
    taken.add(domain)
    return domain


# --- accounts ----------------------------------------------------------------------------------


def _seats(rng: random.Random, billing_type: str) -> int | None:
    if billing_type == "TRIAL":
        return None if rng.random() < 0.4 else rng.choice((25, 50, 100))
    if billing_type == "FREE":
        return rng.choice((5, 10, 25))
    low, high = rng.choices(((5, 24), (25, 99), (100, 499), (500, 2500)), (20, 45, 28, 7))[0]
    seats = rng.randint(low, high)
    if seats >= 25 and rng.random() < 0.5:
        seats = max(25, round(seats / 25) * 25)
    return seats


def _active_users(rng: random.Random, seats: int | None) -> int:
    base = seats if seats is not None else rng.randint(3, 60)
    roll = rng.random()
    if roll < 0.02:
        return 0  # onboarding: the users are not imported yet
    if roll < 0.08:
        return base  # exactly what is licensed
    if roll < 0.76:
        factor = rng.uniform(0.8, 1.2)
    elif roll < 0.88:
        factor = rng.uniform(1.25, 2.0)  # far more users than seats: under-billed
    else:
        factor = rng.uniform(0.3, 0.75)
    return max(1, round(base * factor))


def _customer(
    rng: random.Random, partner: Partner, account_id: int, name: str, domain: str
) -> Customer:
    roll = rng.random()
    archived = roll < 0.06
    if archived:
        billing_type = "PAID" if rng.random() < 0.9 else "TRIAL"
    else:
        billing_type = "PAID" if roll < 0.86 else "TRIAL" if roll < 0.97 else "FREE"

    if billing_type == "PAID":
        level = rng.choices(("Diamond", "Platinum", "Gold", "Silver", "Basic"), (20, 25, 30, 17, 8))
        subscription_level = level[0]
    else:
        subscription_level = "Diamond" if billing_type == "TRIAL" else "Basic"

    seats = _seats(rng, billing_type)
    active_users = _active_users(rng, seats)
    archived_users = round(active_users * rng.uniform(0, 0.2)) if rng.random() < 0.8 else 0

    subscription_end = trial_expiration = None
    if billing_type == "PAID":
        offset = -rng.randint(30, 900) if archived else rng.randint(-120, 3 * 365)
        subscription_end = UNIVERSE_DATE + datetime.timedelta(days=offset)
    elif billing_type == "TRIAL":
        trial_expiration = UNIVERSE_DATE + datetime.timedelta(days=rng.randint(-20, 30))

    if billing_type == "TRIAL":
        age = datetime.timedelta(days=rng.randint(1, 60), seconds=rng.randint(0, 86_399))
    else:
        age = datetime.timedelta(days=rng.randint(90, 3900), seconds=rng.randint(0, 86_399))
    midnight = datetime.datetime.combine(UNIVERSE_DATE, datetime.time(), datetime.UTC)

    skus: tuple[str, ...] = ()
    if billing_type == "PAID" and not archived:
        odds = {"PHISHER_PLUS": 0.25, "SECURITY_COACH": 0.15, "COMPLIANCE_PLUS": 0.10}
        skus = tuple(code for code, p in odds.items() if rng.random() < p)
    elif billing_type == "TRIAL" and rng.random() < 0.1:
        skus = ("PHISHER_PLUS",)

    display_name = name.strip()
    if rng.random() < 0.2:
        display_name = _LEGAL_SUFFIX.sub("", display_name) or display_name

    return Customer(
        id=account_id,
        name=name,
        display_name=display_name,
        domain=domain,
        partner=partner.slug,
        billing_type=billing_type,
        archived=archived,
        subscription_level=subscription_level,
        seats=seats,
        active_users=active_users,
        archived_users=archived_users,
        subscription_end=subscription_end,
        trial_expiration=trial_expiration,
        created_at=midnight - age,
        skus=skus,
    )


@functools.cache
def _customers(partner_slug: str) -> tuple[Customer, ...]:
    partner = partner_by_slug(partner_slug)
    rng = random.Random(f"trueup-sandbox/customers/{partner_slug}")
    base = _ID_BASES[partner_slug]
    ids = sorted(rng.sample(range(base + 1000, base + 1_000_000), partner.size))

    specials = list(_SPECIAL_NAMES.get(partner_slug, ()))
    names = set(specials)
    while len(names) < partner.size:
        names.add(_random_name(rng, partner.region))
    ordered = specials + sorted(names - set(specials))
    rng.shuffle(ordered)

    taken: set[str] = set()
    return tuple(
        _customer(rng, partner, account_id, name, _domain(rng, name, partner.region, taken))
        for account_id, name in zip(ids, ordered, strict=True)
    )


def customers(partner_slug: str) -> list[Customer]:
    """The partner's customer accounts, sorted by id. Raises KeyError for an unknown slug."""
    return list(_customers(partner_slug))


@functools.cache
def _customers_by_id() -> dict[int, Customer]:
    return {c.id: c for p in PARTNERS.values() for c in _customers(p.slug)}


def customer_by_id(account_id: int) -> Customer | None:
    return _customers_by_id().get(account_id)


@functools.cache
def customers_by_reporting_key() -> dict[str, Customer]:
    return {reporting_key(c): c for p in PARTNERS.values() for c in _customers(p.slug)}
