"""KnowBe4 sandbox: the Partner GraphQL API and the Reporting REST API, served over real HTTP.

Served paths (one app per region: us, eu, ca, uk, de):

- ``/knowbe4/{region}/graphql``: Partner GraphQL (``POST``, ``Authorization: Bearer <partner
  key>``). A ``GET`` there, or on ``/knowbe4/{region}/``, answers the HTML sign-in page a browser
  would get.
- ``/knowbe4-api/{region}/v1/account``, ``/v1/users``, ``/v1/users/{id}``: Reporting REST API with
  a per-customer Reporting key.
- ``/_sandbox/knowbe4/keys`` (GET): the partner keys, their GraphQL URLs and a few Reporting
  keys; ``/_sandbox/knowbe4/reporting-keys?partner=<slug>`` (GET): every Reporting key of that
  partner's customers; ``POST /_sandbox/knowbe4/reporting-keys`` with a JSON tenant specification
  (``{"active_users": 20000, ...}``, see ``create_tenant``): a synthetic tenant of any size and
  its Reporting key; ``/_sandbox/knowbe4/keys/{key}`` (GET, POST): one key's settings, request
  count (and for a Reporting key its count of 429 answers, ``rate_limited``), and changes to
  them. Settings: ``revoked``, ``rate_limit_per_second``,
  ``rate_limit_per_minute``, ``daily_cap``, ``fail_on_requests`` (request ordinals since the last
  reset), ``fail_status``, ``delay_seconds``, ``html_errors``, ``schema`` ("2023" | "current"),
  ``mangle`` and ``mangle_on_requests`` (below).
  ``POST /_sandbox/reset`` (in app.py) calls ``reset()``.

Malformed answers: ``mangle`` (one of ``sandboxes.ratelimit.MANGLES``: "truncate", "html",
"wrong_types", "missing_fields", "null_names", "huge") spoils the successful JSON answers of the
key's requests numbered in ``mangle_on_requests`` (the same ordinals as ``fail_on_requests``),
exactly as the PSA sandboxes' switch of that name does (``sandboxes/ratelimit.py`` describes each
kind). The GraphQL endpoint and the Reporting endpoints take part; a session's first GraphQL
request is the client's schema introspection.

Partner keys start with these faults: ``revoked`` is revoked, ``flaky`` fails its 3rd request,
``slow`` answers after 2 s, ``throttled`` allows 4 requests per second. Reporting keys start with
4/second, 50/minute and 2,000 + seats per day.

Documented behaviour (shared/research/knowbe4-api.md) that this follows: the ``accounts`` query
arguments, enums and ``pagination { page pages per totalCount }``; the two schema generations of
seat and user field names (2023: ``numberOfSeats: String``, ``userCount``; current:
``numberOfAllSeats``, ``allUserCount`` ...); ``account(id)`` is null for another partner's
account; a wrong region answers 401; Reporting pages are bare JSON arrays ending with ``[]``,
``per_page`` defaults to 100 with a maximum of 500; ``/v1/account`` omits the subscription keys
for a trial; Reporting limits of 4 requests/second, 50/minute and 2,000 + seats per day, answered
429 with no rate-limit headers; only Platinum and Diamond customers have API access.

Inferred, because nothing recorded says otherwise:

- ``accounts`` without ``status`` returns every account (``ALL``), sorted by id ascending when no
  ``sortField`` is given. Ties in a sort are broken by id, nulls sort last.
- ``per`` is clamped to 25..1000 (the schema says "Minimum 25 items/page"; 1000 is the window
  third-party clients keep to). ``page`` below 1 is 1; a page past the end has no nodes.
  ``pages`` is ceil(totalCount / per), so 0 when nothing matches (Kaminari's arithmetic).
  ``all: true`` returns every match on one page (``per`` = ``totalCount``).
- ``archivedUsers: false`` counts active users only, ``true`` active plus archived users; it
  applies to ``userCount``, ``allUserCount`` and ``standardUserCount``. Standard and all seat/user
  numbers are equal (every sandbox user is a standard user). ``account(id)`` counts active users.
- Every account has phishing and training enabled and is a direct child of the partner, so
  ``phishingEnabled: false``, ``trainingEnabled: false`` and ``otherPartnersAccounts`` other than
  ALL/CHILDREN_ONLY match nothing; ``partnerId`` other than the key's partner matches nothing.
- GraphQL validation and execution errors answer HTTP 200 with ``errors`` (as graphql-ruby does);
  a body that is not JSON answers 400. Error bodies: GraphQL ``{"errors": [{"message": ...}]}``,
  REST ``{"message": ...}``, for 401, 403, 404, 429 and 5xx.
- Reporting ``/v1/users`` without ``status`` (or with a value other than active/archived)
  returns all users, active and archived, sorted by id. ``per_page`` is clamped to 1..500.
  ``/v1/account`` ``type`` is ``paid``, ``trial`` or ``free``.
- Rate windows count only the requests they accept; the daily window starts with the first
  accepted request and lasts 24 hours. The request ordinal used by ``fail_on_requests`` counts
  every request that presents a known key, whatever its answer.
- A Reporting key for a Gold, Silver or Basic customer answers 403.
- Over a GraphQL rate limit the 429 carries ``Retry-After`` (1 for the per-second limit); the
  Reporting API's 429 carries none, as recorded. ``html_errors`` turns every error status of a
  key (401, 403, 429, 5xx) into an HTML page, as a proxy or the Rails error page would send.
- ``/v1/users`` serves the classic ``page``/``per_page`` paging only, not the newer cursor
  paging that third-party code mentions.

Key state is process-wide (one registry per process), guarded by a lock; ``reset()`` restores it.
"""

import asyncio
import base64
import datetime
import functools
import hashlib
import html
import http
import json
import logging
import math
import random
import threading
import time
import unicodedata
import uuid
from collections import deque
from dataclasses import asdict, dataclass, field

from ariadne import QueryType, graphql_sync, make_executable_schema
from graphql import GraphQLError
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import BaseRoute, Mount, Route

from sandboxes import data
from sandboxes.ratelimit import mangle_answer, mangle_problem, mangling

SCHEMAS = ("2023", "current")

# --- GraphQL schema ----------------------------------------------------------------------------

_SDL_COMMON = '''
schema {
  query: Query
}

"""An ISO 8601-encoded date"""
scalar ISO8601Date

"""An ISO 8601-encoded datetime"""
scalar ISO8601DateTime

enum AccountStatuses {
  ALL
  ACTIVE
  ARCHIVED
}

enum AccountBillingTypes {
  ANY
  PAID
  TRIAL
  FREE
}

enum SortDirections {
  ASCENDING
  DESCENDING
}

enum AccountPartnerInclusions {
  ALL
  CHILDREN_ONLY
  GRANDCHILDREN_ONLY
  GREAT_GRANDCHILDREN_ONLY
  NON_CHILDREN
}

enum AccountSortFields {
  ORGANIZATION
  DOMAIN
  BILLING_TYPE
  CREATED_AT
  END_DATE
  SEATS
  USERS
  RISK_SCORE
  PHISH_PRONE_PERCENTAGE
  USERS_TRAINED
}

enum AccountPurchaseStatuses {
  paid
  preview
  trial
}

type Pagination {
  page: Int!
  pages: Int!
  per: Int!
  totalCount: Int!
}

type AccountsCursor {
  nodes: [Account!]!
  pagination: Pagination!
}

type Subscription {
  id: Int!
  friendlyName: String!
  subscriptionLevel: String!
  hasApi: Boolean!
  hasUserEventApi: Boolean!
}

type PurchasedSku {
  skuCode: String!
  title: String!
  expiresAt: ISO8601Date
  status: AccountPurchaseStatuses!
  active: Boolean!
  gracePeriod: Boolean!
}

type User {
  id: Int!
  email: String!
  firstName: String
  lastName: String
}

type Query {
  """Find all accounts for a partner"""
  accounts(
    """Number of items in each page. Minimum 25 items/page."""
    per: Int = 25
    """The page number you want to fetch."""
    page: Int = 1
    """Flag to request all items at once."""
    all: Boolean = false
    partnerId: Int
    status: AccountStatuses
    billingType: AccountBillingTypes
    search: String
    archivedUsers: Boolean = false
    sortField: AccountSortFields
    sortDirection: SortDirections
    phishingEnabled: Boolean
    trainingEnabled: Boolean
    otherPartnersAccounts: AccountPartnerInclusions
    excludeAnonymized: Boolean
  ): AccountsCursor!

  """Find an account managed by this partner"""
  account(id: Int): Account
}

type Account {
  id: Int!
  companyName: String
  displayName: String!
  domain: String!
  archived: Boolean!
  billingType: AccountBillingTypes!
  createdAt: ISO8601DateTime!
  subscriptionEndDate: ISO8601Date
  trialExpirationDate: ISO8601Date
  subscriptionObject: Subscription
  purchasedSkus: [PurchasedSku!]!
  partnerId: Int
  partnerDomain: String
  partnerDisplayName: String
  hasApi: Boolean!
  riskScore: String!
  latestRiskScore: Float
  phishPronePercentage: String!
  percentageUsersTrained: String!
  pstCount: Int
  trainingCampaignCount: Int
  accountOwner: User
'''

_SDL_GENERATION = {
    "2023": """
  numberOfSeats: String
  userCount: Int
}
""",
    "current": """
  numberOfAllSeats: Int
  numberOfStandardSeats: Int
  allUserCount: Int
  standardUserCount: Int
  hasApiv2: Boolean!
}
""",
}


def schema_sdl(generation: str) -> str:
    return _SDL_COMMON + _SDL_GENERATION[generation]


_query = QueryType()


@_query.field("accounts")
def _resolve_accounts(_, info, **args):
    partner: data.Partner = info.context["partner"]
    matches = _sorted(_filtered(partner, args), args.get("sortField"), args.get("sortDirection"))
    total = len(matches)
    # An explicit null (a variable sent as null) replaces the default, as in any GraphQL server.
    if args.get("all"):
        page, per, pages, window = 1, total, 1 if total else 0, matches
    else:
        per = min(max(args.get("per") or 25, 25), 1000)
        page = max(args.get("page") or 1, 1)
        pages = math.ceil(total / per)
        window = matches[(page - 1) * per : page * per]
    generation = info.context["generation"]
    with_archived = bool(args.get("archivedUsers"))
    return {
        "nodes": [_account_node(c, generation, with_archived) for c in window],
        "pagination": {"page": page, "pages": pages, "per": per, "totalCount": total},
    }


@_query.field("account")
def _resolve_account(_, info, id=None):
    partner: data.Partner = info.context["partner"]
    customer = data.customer_by_id(id) if id is not None else None
    if customer is None or customer.partner != partner.slug:
        return None
    return _account_node(customer, info.context["generation"], include_archived_users=False)


@functools.cache
def executable_schema(generation: str):
    return make_executable_schema(schema_sdl(generation), _query)


def _filtered(partner: data.Partner, args: dict) -> list[data.Customer]:
    if args.get("partnerId") not in (None, _partner_id(partner)):
        return []
    if args.get("phishingEnabled") is False or args.get("trainingEnabled") is False:
        return []
    if args.get("otherPartnersAccounts") not in (None, "ALL", "CHILDREN_ONLY"):
        return []
    status = args.get("status") or "ALL"
    billing_type = args.get("billingType") or "ANY"
    search = (args.get("search") or "").casefold()
    return [
        c
        for c in data.customers(partner.slug)
        if (status == "ALL" or c.archived == (status == "ARCHIVED"))
        and (billing_type == "ANY" or c.billing_type == billing_type)
        and (
            not search
            or search in c.name.casefold()
            or search in c.display_name.casefold()
            or search in c.domain
        )
    ]


_SORT_KEYS = {
    "ORGANIZATION": lambda c: c.name.casefold(),
    "DOMAIN": lambda c: c.domain,
    "BILLING_TYPE": lambda c: c.billing_type,
    "CREATED_AT": lambda c: c.created_at,
    "END_DATE": lambda c: c.subscription_end or c.trial_expiration,
    "SEATS": lambda c: c.seats,
    "USERS": lambda c: c.active_users,
    "RISK_SCORE": lambda c: _metrics(c.id)["risk_score"],
    "PHISH_PRONE_PERCENTAGE": lambda c: _metrics(c.id)["phish_prone"],
    "USERS_TRAINED": lambda c: _metrics(c.id)["trained"],
}


def _sorted(customers: list[data.Customer], sort_field, direction) -> list[data.Customer]:
    """Sort with ties kept in id order and nulls last in both directions."""
    if sort_field is None:
        return customers[::-1] if direction == "DESCENDING" else customers
    key = _SORT_KEYS[sort_field]
    present = [c for c in customers if key(c) is not None]
    missing = [c for c in customers if key(c) is None]
    present.sort(key=key, reverse=direction == "DESCENDING")
    return present + missing


def _partner_id(partner: data.Partner) -> int:
    return 10_000 + int(hashlib.sha256(partner.slug.encode()).hexdigest(), 16) % 90_000


def _partner_domain(partner: data.Partner) -> str:
    return partner.name.split()[0].lower() + "-msp.com"


_LEVEL_IDS = {"Basic": 1, "Silver": 2, "Gold": 3, "Platinum": 4, "Diamond": 5}


def _account_node(customer: data.Customer, generation: str, include_archived_users: bool) -> dict:
    partner = data.partner_by_slug(customer.partner)
    metrics = _metrics(customer.id)
    has_api = customer.subscription_level in data.API_LEVELS
    users = customer.active_users + (customer.archived_users if include_archived_users else 0)
    if customer.billing_type == "FREE":
        friendly_name = "Free Tools"
    elif customer.billing_type == "TRIAL":
        friendly_name = f"KMSAT {customer.subscription_level} (Trial)"
    else:
        friendly_name = f"KMSAT {customer.subscription_level}"
    expires_at = customer.subscription_end or customer.trial_expiration
    node = {
        "id": customer.id,
        "companyName": customer.name,
        "displayName": customer.display_name,
        "domain": customer.domain,
        "archived": customer.archived,
        "billingType": customer.billing_type,
        "createdAt": customer.created_at.isoformat().replace("+00:00", "Z"),
        "subscriptionEndDate": _iso(customer.subscription_end),
        "trialExpirationDate": _iso(customer.trial_expiration),
        "subscriptionObject": {
            "id": _LEVEL_IDS[customer.subscription_level],
            "friendlyName": friendly_name,
            "subscriptionLevel": customer.subscription_level,
            "hasApi": has_api,
            "hasUserEventApi": customer.subscription_level == "Diamond",
        },
        "purchasedSkus": [
            {
                "skuCode": code,
                "title": data.ADDON_SKUS[code],
                "expiresAt": _iso(expires_at),
                "status": "trial" if customer.billing_type == "TRIAL" else "paid",
                "active": not customer.archived
                and (expires_at is None or expires_at >= data.UNIVERSE_DATE),
                "gracePeriod": False,
            }
            for code in customer.skus
        ],
        "partnerId": _partner_id(partner),
        "partnerDomain": _partner_domain(partner),
        "partnerDisplayName": partner.name,
        "hasApi": has_api,
        "riskScore": f"{metrics['risk_score']:.1f}",
        "latestRiskScore": metrics["risk_score"],
        "phishPronePercentage": f"{metrics['phish_prone']:.1f}",
        "percentageUsersTrained": f"{metrics['trained']:.1f}",
        "pstCount": metrics["pst_count"],
        "trainingCampaignCount": metrics["training_campaigns"],
        "accountOwner": metrics["owner"],
    }
    if generation == "2023":
        node["numberOfSeats"] = None if customer.seats is None else str(customer.seats)
        node["userCount"] = users
    else:
        node["numberOfAllSeats"] = customer.seats
        node["numberOfStandardSeats"] = customer.seats
        node["allUserCount"] = users
        node["standardUserCount"] = users
        node["hasApiv2"] = has_api
    return node


def _iso(value: datetime.date | None) -> str | None:
    return None if value is None else value.isoformat()


# --- generated tenant content ------------------------------------------------------------------

_FIRST = (
    "Aaliyah",
    "Aiden",
    "Amara",
    "Ana",
    "Andrés",
    "Ben",
    "Camille",
    "Chloé",
    "Daniel",
    "David",
    "Elena",
    "Emma",
    "Erik",
    "Fatima",
    "Finn",
    "Grace",
    "Hannah",
    "Hiroshi",
    "Ines",
    "Isaac",
    "Jack",
    "James",
    "Jana",
    "José",
    "Julia",
    "Kai",
    "Karim",
    "Laura",
    "Leo",
    "Liam",
    "Lucía",
    "Łukasz",
    "Maria",
    "Mateo",
    "Mia",
    "Mohammed",
    "Noah",
    "Nora",
    "Olivia",
    "Omar",
    "Priya",
    "Rafael",
    "Ravi",
    "Sarah",
    "Siobhán",
    "Sofia",
    "Tariq",
    "Thomas",
    "Yuki",
    "Zoë",
)
_LAST = (
    "Adams",
    "Alvarez",
    "Bauer",
    "Brown",
    "Campbell",
    "Chen",
    "Clark",
    "Davis",
    "Dubois",
    "Evans",
    "Fernández",
    "García",
    "Green",
    "Hall",
    "Hernández",
    "Hughes",
    "Ito",
    "Jackson",
    "Johnson",
    "Kaur",
    "Khan",
    "Kim",
    "Kowalski",
    "Lee",
    "Lewis",
    "López",
    "Martin",
    "Mendoza",
    "Miller",
    "Moore",
    "Müller",
    "Nguyen",
    "O'Connor",
    "O'Neill",
    "Patel",
    "Ramos",
    "Reed",
    "Robinson",
    "Rossi",
    "Sánchez",
    "Schmidt",
    "Scott",
    "Silva",
    "Smith",
    "Taylor",
    "Thompson",
    "Walker",
    "White",
    "Williams",
    "Wilson",
    "Wright",
    "Young",
)
_DEPARTMENTS = (
    "Accounting",
    "Administration",
    "Customer Service",
    "Engineering",
    "Finance",
    "Human Resources",
    "IT",
    "Legal",
    "Marketing",
    "Operations",
    "Sales",
)
_JOB_TITLES = (
    "Analyst",
    "Assistant",
    "Associate",
    "Coordinator",
    "Director",
    "Manager",
    "Specialist",
    "Technician",
)
_LOCATIONS = ("Main Office", "Branch Office", "Warehouse", "Remote")
# Non-human mailboxes that consoles import from a directory; TrueUp can exclude them by pattern.
_SERVICE_ACCOUNTS = (
    ("svc-backup", "Backup", "Service"),
    ("scanner", "Scanner", None),
    ("svc-sql", "SQL", "Service"),
    ("noreply", "No", "Reply"),
    ("conference-room-a", "Conference Room", "A"),
)


def _email_part(text: str) -> str:
    text = unicodedata.normalize("NFKD", text.replace("Ł", "L").replace("ł", "l"))
    return "".join(c for c in text.lower() if c.isascii() and c.isalnum())


def _stamp(moment: datetime.datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.000Z")


@functools.lru_cache(maxsize=8192)
def _metrics(account_id: int) -> dict:
    """Per-account numbers that the universe does not carry (risk, training, owner)."""
    rng = random.Random(f"trueup-sandbox/metrics/{account_id}")
    customer = tenant_by_id(account_id)
    first, last = rng.choice(_FIRST), rng.choice(_LAST)
    return {
        "risk_score": round(rng.uniform(12, 68), 3),
        "phish_prone": round(rng.uniform(0.5, 38), 1),
        "trained": round(rng.uniform(20, 100), 1),
        "pst_count": rng.randint(0, 40),
        "training_campaigns": rng.randint(0, 12),
        "owner": {
            "id": rng.randrange(1_000_000, 99_000_000),
            "email": f"{_email_part(first)}.{_email_part(last)}@{customer.domain}",
            "firstName": first,
            "lastName": last,
        },
    }


@functools.lru_cache(maxsize=256)
def users_of(account_id: int) -> tuple[dict, ...]:
    """Every user of one tenant, active and archived, sorted by id, as ``/v1/users`` shows them.

    Exactly ``active_users`` of them are active (service accounts included) and
    ``archived_users`` archived. A tenant of 10 or more active users has 0 to 3 of the
    ``_SERVICE_ACCOUNTS`` mailboxes among its active users (a synthetic tenant: the first
    ``service_accounts`` of them, when it asked).
    """
    customer = tenant_by_id(account_id)
    rng = random.Random(f"trueup-sandbox/users/{account_id}")
    total = customer.active_users + customer.archived_users
    archived = set(rng.sample(range(total), customer.archived_users))
    active_positions = [i for i in range(total) if i not in archived]
    services: dict[int, tuple] = {}
    wanted = _synthetic_service_accounts.get(account_id)
    if wanted is not None:  # a synthetic tenant that asked for the first `wanted` mailboxes
        picked = list(_SERVICE_ACCOUNTS[:wanted])
        services = dict(zip(rng.sample(active_positions, wanted), picked, strict=True))
    elif customer.active_users >= 10:
        picked = rng.sample(_SERVICE_ACCOUNTS, rng.choice((0, 1, 2, 2, 3)))
        services = dict(zip(rng.sample(active_positions, len(picked)), picked, strict=True))
    groups = sorted(rng.sample(range(1000, 99_999), rng.randint(2, 5)))
    start = max(customer.created_at, datetime.datetime(2015, 1, 1, tzinfo=datetime.UTC))
    end = datetime.datetime.combine(data.UNIVERSE_DATE, datetime.time(), datetime.UTC)
    span = max(int((end - start).total_seconds()), 1)
    user_id = rng.randrange(1_000_000, 60_000_000)
    seen_emails: set[str] = set()
    users = []
    for i in range(total):
        user_id += rng.randint(1, 40)
        joined = start + datetime.timedelta(seconds=rng.randrange(span))
        status = "archived" if i in archived else "active"
        if i in services:
            local, first, last = services[i]
            person = False
        else:
            first, last = rng.choice(_FIRST), rng.choice(_LAST)
            local = f"{_email_part(first)}.{_email_part(last)}"
            person = True
        email, n = f"{local}@{customer.domain}", 2
        while email in seen_emails:
            email, n = f"{local}{n}@{customer.domain}", n + 1
        seen_emails.add(email)
        since_join = max(int((end - joined).total_seconds()), 1)
        signed_in = joined + datetime.timedelta(seconds=rng.randrange(since_join))
        archived_at = joined + datetime.timedelta(seconds=rng.randrange(since_join))
        users.append(
            {
                "id": user_id,
                "employee_number": str(rng.randint(10000, 99999))
                if person and rng.random() < 0.7
                else None,
                "first_name": first,
                "last_name": last,
                "job_title": rng.choice(_JOB_TITLES) if person else None,
                "email": email,
                "phish_prone_percentage": round(rng.uniform(0, 60), 3) if person else 0.0,
                "phone_number": f"555-01{rng.randint(0, 99):02d}" if person else None,
                "extension": str(rng.randint(100, 499)) if person else None,
                "mobile_phone_number": None,
                "location": rng.choice(_LOCATIONS),
                "division": None,
                "manager_name": None,
                "manager_email": None,
                "provisioning_managed": rng.random() < 0.4,
                "provisioning_guid": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
                "groups": sorted(rng.sample(groups, rng.randint(1, 2))),
                "aliases": [],
                "joined_on": _stamp(joined),
                "last_sign_in": _stamp(signed_in) if person and rng.random() < 0.6 else None,
                "status": status,
                "organization": customer.name,
                "department": rng.choice(_DEPARTMENTS) if person else "IT",
                "language": "English - United States",
                "comment": None,
                "employee_start_date": _stamp(joined) if person else None,
                "archived_at": _stamp(archived_at) if status == "archived" else None,
                "custom_field_1": None,
                "custom_field_2": None,
                "custom_field_3": None,
                "custom_field_4": None,
                "custom_date_1": None,
                "custom_date_2": None,
                "current_risk_score": round(rng.uniform(5, 80), 3) if person else 0.0,
            }
        )
    return tuple(users)


def account_document(customer: data.Customer) -> dict:
    """The ``/v1/account`` body; trial accounts have no subscription keys (recorded behaviour)."""
    owner = _metrics(customer.id)["owner"]
    document = {
        "name": customer.name,
        "type": customer.billing_type.lower(),
        "domains": [customer.domain],
        "admins": [
            {
                "id": owner["id"],
                "first_name": owner["firstName"],
                "last_name": owner["lastName"],
                "email": owner["email"],
            }
        ],
    }
    if customer.billing_type == "PAID":
        document["subscription_level"] = customer.subscription_level
        document["subscription_end_date"] = _iso(customer.subscription_end)
        document["number_of_seats"] = customer.seats
    document["current_risk_score"] = _metrics(customer.id)["risk_score"]
    return document


# --- synthetic Reporting tenants ----------------------------------------------------------------
# Tenants of any size, made through the control API (``POST /_sandbox/knowbe4/reporting-keys``)
# for benches and tests that need, say, 20,000 active users: the universe's customers are small.
# The same specification always gives the same tenant (id, key and users), in every process;
# tenants live as long as the process (``reset()`` keeps them and forgets their keys' counters).

_SYNTHETIC_BASE_ID = 9_000_000
_LEVELS = ("Diamond", "Platinum", "Gold", "Silver", "Basic")
_synthetic_by_key: dict[str, data.Customer] = {}
_synthetic_by_id: dict[int, data.Customer] = {}
_synthetic_regions: dict[int, str] = {}
_synthetic_service_accounts: dict[int, int] = {}
_SYNTHETIC_KEYS: dict[int, str] = {}
_TENANT_FIELDS = {
    "active_users": int,
    "archived_users": int,
    "seats": (int, type(None)),
    "billing_type": str,
    "subscription_level": str,
    "region": str,
    "name": str,
    "service_accounts": (int, type(None)),
}


def tenant_by_id(account_id: int) -> data.Customer | None:
    return _synthetic_by_id.get(account_id) or data.customer_by_id(account_id)


def tenant_by_key(key: str) -> data.Customer | None:
    """The customer whose Reporting key this is (universe or synthetic), or None."""
    return _synthetic_by_key.get(key) or data.customers_by_reporting_key().get(key)


def tenant_region(customer: data.Customer) -> str:
    region = _synthetic_regions.get(customer.id)
    return region or data.partner_by_slug(customer.partner).region


def create_tenant(spec: object) -> data.Customer:
    """A Reporting tenant from ``spec``: ``active_users`` (required), ``archived_users`` (0),
    ``seats`` (= active users; null for none), ``billing_type`` (PAID | TRIAL | FREE),
    ``subscription_level`` (Diamond), ``region`` (us), ``name``, ``service_accounts`` (how many
    of the sandbox's service mailboxes are among the active users, 0-5; default as generated).
    Raises ValueError on a bad specification. Its users are generated here, so the first
    ``/v1/users`` request is as fast as the others."""
    if not isinstance(spec, dict):
        raise ValueError("the body must be a JSON object")
    for name, value in spec.items():
        if name not in _TENANT_FIELDS:
            raise ValueError(f"unknown field {name!r}; known: {', '.join(_TENANT_FIELDS)}")
        if not isinstance(value, _TENANT_FIELDS[name]) or isinstance(value, bool):
            raise ValueError(f"{name}: wrong type {type(value).__name__}")
    active = spec.get("active_users")
    archived = spec.get("archived_users", 0)
    if active is None or not 0 <= active <= 1_000_000 or not 0 <= archived <= 1_000_000:
        raise ValueError("active_users (required) and archived_users: 0 to 1,000,000")
    billing_type = spec.get("billing_type", "PAID")
    level = spec.get("subscription_level", "Diamond")
    region = spec.get("region", "us")
    services = spec.get("service_accounts")
    if billing_type not in ("PAID", "TRIAL", "FREE"):
        raise ValueError("billing_type: PAID, TRIAL or FREE")
    if level not in _LEVELS:
        raise ValueError(f"subscription_level: one of {', '.join(_LEVELS)}")
    if region not in data.REGIONS:
        raise ValueError(f"region: one of {', '.join(data.REGIONS)}")
    if services is not None and not 0 <= services <= min(len(_SERVICE_ACCOUNTS), active):
        raise ValueError(f"service_accounts: 0 to {len(_SERVICE_ACCOUNTS)}, at most active_users")
    canonical = json.dumps(spec, sort_keys=True)
    digest = int(hashlib.sha256(canonical.encode()).hexdigest(), 16)
    account_id = _SYNTHETIC_BASE_ID + digest % 900_000
    name = spec.get("name") or f"Synthetic Tenant {active:,} users"
    domain = "".join(c for c in name.lower() if c.isascii() and c.isalnum())[:40] or "tenant"
    customer = data.Customer(
        id=account_id,
        name=name,
        display_name=name,
        domain=f"{domain}-{account_id}.example.com",
        partner="synthetic",
        billing_type=billing_type,
        archived=False,
        subscription_level=level,
        seats=spec.get("seats", active),
        active_users=active,
        archived_users=archived,
        subscription_end=data.UNIVERSE_DATE + datetime.timedelta(days=365)
        if billing_type == "PAID"
        else None,
        trial_expiration=data.UNIVERSE_DATE + datetime.timedelta(days=14)
        if billing_type == "TRIAL"
        else None,
        created_at=datetime.datetime(2020, 1, 1, tzinfo=datetime.UTC),
        skus=(),
    )
    key_digest = hashlib.sha512(f"trueup-sandbox/reporting/synthetic/{canonical}".encode())
    key = base64.urlsafe_b64encode(key_digest.digest()[:48]).decode()
    with _lock:
        _synthetic_by_key[key] = customer
        _synthetic_by_id[account_id] = customer
        _synthetic_regions[account_id] = region
        _SYNTHETIC_KEYS[account_id] = key
        if services is not None:
            _synthetic_service_accounts[account_id] = services
    users_of(account_id)
    return customer


# --- keys, limits and faults -------------------------------------------------------------------


@dataclass
class KeySettings:
    revoked: bool = False
    rate_limit_per_second: int | None = None
    rate_limit_per_minute: int | None = None
    daily_cap: int | None = None
    fail_on_requests: list[int] = field(default_factory=list)
    fail_status: int = 500
    delay_seconds: float = 0.0
    html_errors: bool = False
    schema: str | None = None  # None: the server's default generation
    mangle: str | None = None  # one of ratelimit.MANGLES: spoil these requests' answers
    mangle_on_requests: list[int] = field(default_factory=list)


# Partner keys that start with a fault switched on.
_PARTNER_FAULTS = {
    "revoked": {"revoked": True},
    "flaky": {"fail_on_requests": [3]},
    "slow": {"delay_seconds": 2.0},
    "throttled": {"rate_limit_per_second": 4},
}

REPORTING_DAILY_BASE = 2000


@dataclass
class _KeyState:
    kind: str  # "partner" | "reporting"
    region: str
    settings: KeySettings
    request_count: int = 0
    accepted: deque = field(default_factory=deque)  # monotonic times within the last minute
    day_started: float | None = None
    day_count: int = 0
    rate_limited: int = 0  # requests answered 429 (any limit) since the last reset

    def throttle(self, now: float) -> tuple[str, int] | None:
        """Admit one request, or say which limit it breaks and when to retry (seconds)."""
        while self.accepted and now - self.accepted[0] >= 60:
            self.accepted.popleft()
        if self.day_started is not None and now - self.day_started >= 86_400:
            self.day_started, self.day_count = None, 0
        settings = self.settings
        if settings.daily_cap is not None and self.day_count >= settings.daily_cap:
            started = now if self.day_started is None else self.day_started
            retry = math.ceil(86_400 - (now - started))
            return f"Daily limit exceeded: at most {settings.daily_cap} requests per day", retry
        per_minute = settings.rate_limit_per_minute
        if per_minute is not None and len(self.accepted) >= per_minute:
            retry = math.ceil(60 - (now - self.accepted[0]))
            return f"Rate limit exceeded: at most {per_minute} requests per minute", retry
        if settings.rate_limit_per_second is not None:
            last_second = sum(1 for t in self.accepted if now - t < 1)
            if last_second >= settings.rate_limit_per_second:
                limit = settings.rate_limit_per_second
                return f"Rate limit exceeded: at most {limit} requests per second", 1
        self.accepted.append(now)
        if self.day_started is None:
            self.day_started = now
        self.day_count += 1
        return None


_lock = threading.Lock()
_keys: dict[str, _KeyState] = {}


def _initial_state(key: str) -> _KeyState | None:
    partner = data.PARTNERS.get(key)
    if partner is not None:
        settings = KeySettings(**_PARTNER_FAULTS.get(partner.slug, {}))
        return _KeyState("partner", partner.region, settings)
    customer = tenant_by_key(key)
    if customer is not None:
        settings = KeySettings(
            rate_limit_per_second=4,
            rate_limit_per_minute=50,
            daily_cap=REPORTING_DAILY_BASE + (customer.seats or 0),
        )
        return _KeyState("reporting", tenant_region(customer), settings)
    return None


def _state(key: str) -> _KeyState | None:
    """The key's state, created on first use; None for a key that does not exist. Hold _lock."""
    if key not in _keys:
        state = _initial_state(key)
        if state is None:
            return None
        _keys[key] = state
    return _keys[key]


def reset() -> None:
    """Forget every key's counters and runtime settings: back to the start."""
    with _lock:
        _keys.clear()


def _bearer(request: Request) -> str | None:
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


def _error_page(status: int, message: str) -> str:
    phrase = http.HTTPStatus(status).phrase
    return (
        "<!DOCTYPE html>\n<html>\n<head><title>We're sorry, but something went wrong "
        f"({status})</title></head>\n<body>\n<h1>{status} {html.escape(phrase)}</h1>\n"
        f"<p>{html.escape(message)}</p>\n</body>\n</html>\n"
    )


def _error(api: str, status: int, message: str, html_errors: bool, headers=None) -> Response:
    if html_errors:
        return HTMLResponse(_error_page(status, message), status, headers=headers)
    body = {"errors": [{"message": message}]} if api == "graphql" else {"message": message}
    return JSONResponse(body, status, headers=headers)


_UNAUTHORIZED = "Unauthorized: the API token is invalid, expired or revoked"


async def _admit(request: Request, kind: str, region: str) -> tuple[_KeyState | None, Response]:
    """Apply auth, faults and limits for one API request: (state, None) or (None, error)."""
    api = "graphql" if kind == "partner" else "rest"
    key = _bearer(request)
    with _lock:
        state = _state(key) if key else None
        if state is None:
            return None, _error(api, 401, _UNAUTHORIZED, False)
        state.request_count += 1
        ordinal = state.request_count
        settings = KeySettings(**asdict(state.settings))
    if settings.delay_seconds:
        await asyncio.sleep(settings.delay_seconds)
    if state.kind != kind or state.region != region or settings.revoked:
        return None, _error(api, 401, _UNAUTHORIZED, settings.html_errors)
    if settings.mangle and ordinal in settings.mangle_on_requests:
        mangle_answer(settings.mangle)  # the @mangling endpoint spoils its answer
    if ordinal in settings.fail_on_requests:
        status = settings.fail_status
        return None, _error(api, status, http.HTTPStatus(status).phrase, settings.html_errors)
    with _lock:
        refusal = state.throttle(time.monotonic())
    if refusal is not None:
        with _lock:
            state.rate_limited += 1
        message, retry_after = refusal
        # The recorded Reporting API answers carry no rate-limit headers at all.
        headers = {"Retry-After": str(retry_after)} if kind == "partner" else None
        return None, _error(api, 429, message, settings.html_errors, headers)
    return state, None


class _ServerErrorLog(logging.LoggerAdapter):
    """Logs the sandbox's own failures; a client's invalid query is an answer, not a failure."""

    def error(self, msg, *args, exc_info=None, **kwargs):
        if not isinstance(exc_info, GraphQLError):
            super().error(msg, *args, exc_info=exc_info, **kwargs)


_graphql_log = _ServerErrorLog(logging.getLogger(__name__), {})


# --- HTTP endpoints ----------------------------------------------------------------------------

_SIGN_IN_PAGE = """<!DOCTYPE html>
<html lang="en">
<head><meta charset="utf-8"><title>KnowBe4 | Sign In</title></head>
<body>
<main>
<h1>KnowBe4 Security Awareness Training</h1>
<form action="/users/sign_in" method="post">
<label>Email <input type="email" name="user[email]"></label>
<button type="submit">Next</button>
</form>
</main>
</body>
</html>
"""


async def _sign_in_page(request: Request) -> Response:
    return HTMLResponse(_SIGN_IN_PAGE)


async def _html_not_found(request: Request) -> Response:
    return HTMLResponse(_error_page(404, "The page you were looking for doesn't exist."), 404)


def _graphql_app(region: str, default_schema: str) -> Starlette:
    @mangling
    async def endpoint(request: Request) -> Response:
        if request.method == "GET":
            return HTMLResponse(_SIGN_IN_PAGE)
        state, error = await _admit(request, "partner", region)
        if error is not None:
            return error
        try:
            payload = json.loads(await request.body())
        except ValueError:
            return JSONResponse({"errors": [{"message": "The request body is not JSON"}]}, 400)
        context = {
            "partner": data.PARTNERS[_bearer(request)],
            "generation": state.settings.schema or default_schema,
        }
        _, result = await run_in_threadpool(
            graphql_sync,
            executable_schema(context["generation"]),
            payload,
            context_value=context,
            logger=_graphql_log,
        )
        return JSONResponse(result, headers={"X-Request-Id": str(uuid.uuid4())})

    return Starlette(
        routes=[
            Route("/graphql", endpoint, methods=["GET", "POST"]),
            Route("/", _sign_in_page),
            Route("/{path:path}", _html_not_found),
        ]
    )


def _rest_headers() -> dict[str, str]:
    return {"X-Request-Id": str(uuid.uuid4()), "Cache-Control": "no-cache, no-store"}


def _int_param(request: Request, name: str, default: int) -> int:
    try:
        return int(request.query_params[name])
    except (KeyError, ValueError):
        return default


def _reporting_app(region: str) -> Starlette:
    async def tenant(request: Request) -> tuple[data.Customer | None, Response | None]:
        state, error = await _admit(request, "reporting", region)
        if error is None:
            customer = tenant_by_key(_bearer(request))
            if customer.subscription_level in data.API_LEVELS:
                return customer, None
            message = "Forbidden: the API requires a Platinum or Diamond subscription"
            error = _error("rest", 403, message, state.settings.html_errors)
        error.headers.update(_rest_headers())
        return None, error

    @mangling
    async def account(request: Request) -> Response:
        customer, error = await tenant(request)
        if error is not None:
            return error
        return JSONResponse(account_document(customer), headers=_rest_headers())

    @mangling
    async def users(request: Request) -> Response:
        customer, error = await tenant(request)
        if error is not None:
            return error
        status = request.query_params.get("status")
        everyone = users_of(customer.id)
        if status in ("active", "archived"):
            everyone = [u for u in everyone if u["status"] == status]
        per_page = min(max(_int_param(request, "per_page", 100), 1), 500)
        page = max(_int_param(request, "page", 1), 1)
        window = everyone[(page - 1) * per_page : page * per_page]
        return JSONResponse(list(window), headers=_rest_headers())

    @mangling
    async def user(request: Request) -> Response:
        customer, error = await tenant(request)
        if error is not None:
            return error
        wanted = request.path_params["user_id"]
        for candidate in users_of(customer.id):
            if candidate["id"] == wanted:
                return JSONResponse(candidate, headers=_rest_headers())
        return JSONResponse({"message": "Not Found"}, 404, headers=_rest_headers())

    async def not_found(request: Request) -> Response:
        return JSONResponse({"message": "Not Found"}, 404, headers=_rest_headers())

    return Starlette(
        routes=[
            Route("/v1/account", account),
            Route("/v1/users", users),
            Route("/v1/users/{user_id:int}", user),
            Route("/{path:path}", not_found),
        ]
    )


# --- control API -------------------------------------------------------------------------------

_SETTING_TYPES = {
    "revoked": (bool,),
    "rate_limit_per_second": (int, type(None)),
    "rate_limit_per_minute": (int, type(None)),
    "daily_cap": (int, type(None)),
    "fail_on_requests": (list,),
    "fail_status": (int,),
    "delay_seconds": (int, float),
    "html_errors": (bool,),
    "schema": (str, type(None)),
    "mangle": (str, type(None)),
    "mangle_on_requests": (list,),
}


def _validate(changes: object) -> str | None:
    """Why a settings change is invalid, or None."""
    if not isinstance(changes, dict):
        return "the body must be a JSON object"
    for name, value in changes.items():
        if name not in _SETTING_TYPES:
            return f"unknown setting {name!r}; known: {', '.join(_SETTING_TYPES)}"
        bool_allowed = bool in _SETTING_TYPES[name]
        if not isinstance(value, _SETTING_TYPES[name]) or (
            isinstance(value, bool) and not bool_allowed
        ):
            return f"{name}: wrong type {type(value).__name__}"
    if any(not isinstance(n, int) or n < 1 for n in changes.get("fail_on_requests", [])):
        return "fail_on_requests: a list of request numbers, 1 for the first request"
    if not 400 <= changes.get("fail_status", 500) <= 599:
        return "fail_status: an HTTP error status, 400 to 599"
    for name in ("rate_limit_per_second", "rate_limit_per_minute", "daily_cap", "delay_seconds"):
        if (changes.get(name) or 0) < 0:
            return f"{name}: not negative"
    if changes.get("schema") not in (None, *SCHEMAS):
        return f"schema: one of {', '.join(SCHEMAS)} or null"
    return mangle_problem(changes)


def _key_document(key: str, state: _KeyState, default_schema: str) -> dict:
    document = {"key": key, "kind": state.kind, "region": state.region}
    if state.kind == "partner":
        document["partner"] = data.PARTNERS[key].slug
    else:
        document["customer_id"] = tenant_by_key(key).id
    document.update(asdict(state.settings))
    document["schema"] = state.settings.schema or default_schema
    document["request_count"] = state.request_count
    if state.kind == "reporting":
        document["rate_limited"] = state.rate_limited
    return document


def _control_routes(default_schema: str) -> list[BaseRoute]:
    async def list_keys(request: Request) -> Response:
        base = str(request.base_url).rstrip("/")
        partners = [
            {
                "slug": p.slug,
                "name": p.name,
                "region": p.region,
                "key": p.key,
                "customers": p.size,
                "graphql_url": f"{base}/knowbe4/{p.region}/graphql",
                "faults": _PARTNER_FAULTS.get(p.slug, {}),
            }
            for p in data.PARTNERS.values()
        ]
        samples = [c for c in data.customers("demo") if c.subscription_level in data.API_LEVELS]
        reporting = [_reporting_entry(c, base) for c in samples[:5]]
        return JSONResponse({"partners": partners, "reporting_key_samples": reporting})

    async def reporting_keys(request: Request) -> Response:
        base = str(request.base_url).rstrip("/")
        if request.method == "POST":
            try:
                spec = json.loads(await request.body() or b"{}")
                customer = await run_in_threadpool(create_tenant, spec)
            except ValueError as error:
                return JSONResponse({"message": str(error)}, 400)
            return JSONResponse(_reporting_entry(customer, base))
        slug = request.query_params.get("partner", "demo")
        try:
            entries = [_reporting_entry(c, base) for c in data.customers(slug)]
        except KeyError:
            return JSONResponse({"message": f"unknown partner {slug!r}"}, 404)
        return JSONResponse(entries)

    async def key_settings(request: Request) -> Response:
        key = request.path_params["key"]
        if request.method == "POST":
            try:
                changes = json.loads(await request.body() or b"{}")
            except ValueError:
                return JSONResponse({"message": "the body is not JSON"}, 400)
            problem = _validate(changes)
            if problem is not None:
                return JSONResponse({"message": problem}, 400)
        with _lock:
            state = _state(key)
            if state is None:
                return JSONResponse({"message": "no such key"}, 404)
            if request.method == "POST":
                for name, value in changes.items():
                    setattr(state.settings, name, value)
            return JSONResponse(_key_document(key, state, default_schema))

    return [
        Route("/_sandbox/knowbe4/keys", list_keys),
        Route("/_sandbox/knowbe4/reporting-keys", reporting_keys, methods=["GET", "POST"]),
        Route("/_sandbox/knowbe4/keys/{key}", key_settings, methods=["GET", "POST"]),
    ]


def _reporting_entry(customer: data.Customer, base: str) -> dict:
    region = tenant_region(customer)
    return {
        "customer_id": customer.id,
        "name": customer.name,
        "partner": customer.partner,
        "region": region,
        "billing_type": customer.billing_type,
        "subscription_level": customer.subscription_level,
        "has_api": customer.subscription_level in data.API_LEVELS,
        "key": _SYNTHETIC_KEYS.get(customer.id) or data.reporting_key(customer),
        "base_url": f"{base}/knowbe4-api/{region}",
        "seats": customer.seats,
        "active_users": customer.active_users,
        "archived_users": customer.archived_users,
    }


def routes(default_schema: str = "2023") -> list[BaseRoute]:
    """Every KnowBe4 route; ``default_schema`` is the generation of keys with no ``schema`` set."""
    if default_schema not in SCHEMAS:
        raise ValueError(f"knowbe4 schema must be one of {SCHEMAS}, not {default_schema!r}")
    mounted: list[BaseRoute] = []
    for region in data.REGIONS:
        mounted.append(Mount(f"/knowbe4/{region}", app=_graphql_app(region, default_schema)))
        mounted.append(Mount(f"/knowbe4-api/{region}", app=_reporting_app(region)))
    return mounted + _control_routes(default_schema)
