"""Review cards: the rows a card shows, and a page of cards rendered once per process.

A card's HTML is kept in the `fragments` cache under a digest of every row it shows, which
the database computes for the page's fifty cards in one query (`RowDigest`). Only cards not
in the cache are loaded as models and rendered: loading fifty cards with six related rows
each, and digesting them in Python, cost half the review page.
"""

import functools
import hashlib
from typing import NamedTuple

from django.core.cache import caches
from django.db import connection
from django.db.models import ForeignKey, Prefetch
from django.template import Context
from django.template.loader import get_template
from django.utils.safestring import mark_safe

from psa.models import PSAProduct
from reconcile.core.fragments import RowDigest
from reconcile.review.models import CompanyTag, SeatDiscrepancy

# The rows a card shows besides its own (select_related paths, each hop listed).
RELATED = [
    "psa_company",
    "psa_product",
    "line",
    "line__container",
    "line__connection",
    "push_item",
    "line__rule",
]
# What the PSA sent and when it was seen, and the matcher's name keys: no card shows them,
# decoding them costs, and the import touches last_seen_at on every sync (cards are keyed
# by what they show). Reading one of them anyway costs a query per card, which the
# constant-query test of the review page would catch.
NOT_SHOWN = [
    *(
        f"{row}__{field}"
        for row in ("psa_company", "psa_product", "line", "line__container")
        for field in ("raw", "first_seen_at", "last_seen_at")
    ),
    "psa_company__name_full",
    "psa_company__name_core",
    "psa_company__name_legal",
    "psa_company__keys_for",
    "line__connection__settings",
    "line__connection__container_type_ids",
    "line__connection__container_type_names",
]
PAGE = 50  # cards on a page of the review
TIMEOUT = 86400


def with_related(cards):
    """Cards with every row they show, and nothing else."""
    return (
        cards.select_related(*RELATED)
        .defer(*NOT_SHOWN)
        .prefetch_related(
            Prefetch("psa_company__tags", queryset=CompanyTag.objects.order_by("name"))
        )
    )


class PageCard(NamedTuple):
    """One card of a page, rendered, with what the page's group headings show."""

    pk: int
    psa_company_id: int
    company_name: str
    psa_product_id: int
    product_label: str
    html: str


def rendered(ids: list[int], context: dict) -> list[PageCard]:
    """The cards `ids`, in that order, rendered with `context` (view, link_filters, can_act,
    currency, default_effective_date): from the cache where their rows are unchanged."""
    if not ids:
        return []
    sql = _digest_sql(connection.alias)
    with connection.cursor() as cursor:
        # Compiled for PAGE ids: a shorter page repeats its last one.
        cursor.execute(sql, ids + ids[-1:] * (PAGE - len(ids)))
        rows = {row[0]: row for row in cursor.fetchall()}
    tags = {}
    for company, name in (
        CompanyTag.objects.filter(psa_company_id__in={row[1] for row in rows.values()})
        .order_by("name")
        .values_list("psa_company_id", "name")
    ):
        tags.setdefault(company, []).append(name)
    shared = repr(sorted(context.items()))
    keys = {
        pk: "review-card:"
        + hashlib.blake2b(
            repr((row[-1], tags.get(row[1]), shared)).encode(), digest_size=16
        ).hexdigest()
        for pk, row in rows.items()
    }
    cache = caches["fragments"]
    html = cache.get_many(keys.values())
    missing = [pk for pk, key in keys.items() if key not in html]
    if missing:
        template = get_template("review/index.html#card").template
        fresh = {}
        for card in with_related(SeatDiscrepancy.objects.filter(pk__in=missing)):
            fresh[keys[card.pk]] = template.render(Context({**context, "card": card}))
        cache.set_many(fresh, TIMEOUT)
        html |= fresh
    return [
        PageCard(
            pk,
            row[1],
            row[2],
            row[3],
            PSAProduct.label(row[4], row[5]),
            mark_safe(html[keys[pk]]),  # rendered by the template, escaped there
        )
        for pk in ids
        if (row := rows.get(pk)) and keys[pk] in html
    ]


@functools.cache
def _digest_sql(alias: str) -> str:
    """The digest query, compiled once per process: compiling its hundred columns and seven
    joins cost ten times running it. Its only parameters are PAGE card ids."""
    slots = list(range(1, PAGE + 1))
    query = (
        SeatDiscrepancy.objects.filter(pk__in=slots)
        .annotate(digest=RowDigest(*_shown_columns()))
        .values_list(
            "id",
            "psa_company_id",
            "psa_company__name",
            "psa_product_id",
            "psa_product__name",
            "psa_product__identifier",
            "digest",
        )
        .order_by()
    )
    sql, params = query.query.get_compiler(alias).as_sql()
    if list(params) != slots:
        raise RuntimeError("the card digest query has parameters besides the card ids")
    return sql


def _shown_columns() -> list[str]:
    """Every column a card shows: its own, and its related rows' but NOT_SHOWN."""
    columns = [field.attname for field in SeatDiscrepancy._meta.concrete_fields]
    for path in RELATED:
        model = SeatDiscrepancy
        for hop in path.split("__"):
            model = model._meta.get_field(hop).related_model
        for field in model._meta.concrete_fields:
            if f"{path}__{field.name}" not in NOT_SHOWN:
                name = field.attname if isinstance(field, ForeignKey) else field.name
                columns.append(f"{path}__{name}")
    return columns
