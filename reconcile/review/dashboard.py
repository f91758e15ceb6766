"""The dashboard's figures: what is under- and over-billed, what still needs mapping, whether
every connection is fresh, and billed against used seats month by month.

Every function reads a small constant number of queries, whatever the number of cards.
"""

import datetime
from dataclasses import dataclass
from decimal import Decimal

from django.conf import settings
from django.core.cache import cache
from django.db.models import Count, Max, Q, Sum
from django.utils import dateformat, timezone

from integrations.models import VendorConnection
from psa.models import PSAConnection
from reconcile.core.connections import Connection, PollingInterval
from reconcile.mapping.services import unmapped_accounts
from reconcile.review.models import CountHistory, Decision, SeatDiscrepancy
from reconcile.sync.models import SyncRun

Kind = SeatDiscrepancy.Kind

# The vendor reports more users than the PSA bills (new revenue cards included): money not
# collected. Fewer: customers billed for seats nobody uses.
UNDER = Q(delta__gt=0)
OVER = Q(delta__lt=0)
NEW_REVENUE = Q(kind=Kind.NEW_REVENUE)


def totals(organization) -> dict:
    """Seats and money per month under- and over-billed, in one aggregate query.

    {"under": {...}, "over": {...}, "new_revenue": {...}}, each with `cards`, `seats`
    (sum of the deltas, positive), `money` (sum of the monthly changes, positive, in the
    organization's currency) and `unpriced` (cards without a unit price, not in `money`).
    Dismissed cards are left out, as on the review page's default (open) view the figures
    link to.
    """
    groups = {"under": UNDER, "over": OVER, "new_revenue": NEW_REVENUE & UNDER}
    aggregates = {}
    for name, condition in groups.items():
        aggregates[f"{name}_cards"] = Count("id", filter=condition)
        aggregates[f"{name}_seats"] = Sum("delta", filter=condition)
        aggregates[f"{name}_money"] = Sum("monthly_change", filter=condition)
        aggregates[f"{name}_unpriced"] = Count("id", filter=condition & Q(monthly_change=None))
    row = (
        SeatDiscrepancy.objects.filter(organization=organization)
        .exclude(decision=Decision.DISMISSED)
        .aggregate(**aggregates)
    )
    return {
        name: {
            "cards": row[f"{name}_cards"],
            "seats": abs(row[f"{name}_seats"] or Decimal(0)),
            "money": abs(row[f"{name}_money"] or Decimal(0)),
            "unpriced": row[f"{name}_unpriced"],
        }
        for name in groups
    }


def unmapped_count(organization) -> int:
    """Vendor accounts with no mapping, counted as the mapping page counts them."""
    return unmapped_accounts(organization).count()


@dataclass
class Health:
    """How fresh one connection's data is. `problem` is "" (healthy), "error" (the last
    import failed), "never" (no import succeeded yet) or "stale" (no success for longer than
    twice its polling interval)."""

    connection: Connection
    kind: str  # "vendor" or "psa"
    problem: str
    importing: bool  # a run is queued or running

    @property
    def is_bad(self) -> bool:
        """Shown in red: failed, stale, or never imported with no import under way."""
        return self.problem in ("error", "stale") or (
            self.problem == "never" and not self.importing
        )

    @property
    def expected_every(self) -> str:
        return PollingInterval(self.connection.polling_interval).label.lower()


def connection_problem(connection, now: datetime.datetime) -> str:
    if connection.state == Connection.State.DISABLED:
        return ""
    if connection.state == Connection.State.ERROR:
        return "error"
    if connection.last_success_at is None:
        return "never"
    interval = connection.polling_interval
    if interval and connection.last_success_at < now - datetime.timedelta(minutes=2 * interval):
        return "stale"
    return ""


def sync_health(organization, now: datetime.datetime | None = None) -> list[Health]:
    """Every vendor and PSA connection with its problem, if any (three queries)."""
    now = now or timezone.now()
    # Runs that stopped reporting are not "under way" (sync.services.mark_stale_runs).
    cutoff = now - datetime.timedelta(seconds=settings.TRUEUP_SYNC_STALE_AFTER)
    active = SyncRun.objects.filter(
        Q(state=SyncRun.State.RUNNING, heartbeat_at__gte=cutoff)
        | Q(state=SyncRun.State.QUEUED, queued_at__gte=cutoff),
        organization=organization,
    ).values_list("vendor_connection_id", "psa_connection_id")
    importing = {("vendor", v) if v else ("psa", p) for v, p in active}
    rows = [("vendor", c) for c in VendorConnection.objects.filter(organization=organization)]
    rows += [("psa", c) for c in PSAConnection.objects.filter(organization=organization)]
    return [
        Health(
            connection=connection,
            kind=kind,
            problem=connection_problem(connection, now),
            importing=(kind, connection.pk) in importing,
        )
        for kind, connection in rows
    ]


def month_ends(today: datetime.date, months: int = 12) -> list[datetime.date]:
    """The last day of each of the `months - 1` months before today's, then today."""
    ends = [today]
    first = today.replace(day=1)
    for _ in range(months - 1):
        ends.append(first - datetime.timedelta(days=1))
        first = ends[-1].replace(day=1)
    return ends[::-1]


def monthly_series(organization, months: int = 12, today: datetime.date | None = None) -> list:
    """Used and billed seats at each month end of the last `months` months (today for the
    current one): [{"month": date, "used": int, "billed": Decimal}, …].

    Folding every change point is the dashboard's dearest part, so the series is cached
    until the history changes. Points are only ever added (reconciliation, the demo
    backfill) or deleted with their line or connection, never edited: their count and newest
    id say which points there are (PostgreSQL never hands an id out twice; SQLite may give a
    deleted newest id again, so an hour bounds how long such a series could be stale).
    """
    today = today or timezone.localdate()
    history = CountHistory.objects.filter(organization=organization)
    key = f"monthly-series:{organization.pk}:{months}:{today}:{_points(history)}"
    series = cache.get(key)
    if series is None:
        series = _fold(organization, month_ends(today, months))
        cache.set(key, series, SERIES_CACHE_SECONDS)
    return series


SERIES_CACHE_SECONDS = 3600


def _points(history) -> str:
    """Which points there are (see monthly_series): their count and newest id."""
    state = history.aggregate(count=Count("id"), newest=Max("id"))
    return f"{state['count']}:{state['newest']}"


def _fold(organization, ends: list[datetime.date]) -> list:
    """CountHistory holds change points per card: at a month end, each card counts the numbers
    of its latest point on or before that day. The points are read in order and folded with
    running sums, linear in the points.

    New points are dated today, so the fold up to the last month end is kept apart (under
    those points' own count and newest id): after a sync, only this month's are folded again.
    """
    history = CountHistory.objects.filter(organization=organization)
    if len(ends) < 2:
        return _Fold().add(history.filter(day__lte=ends[-1]), ends).series
    settled = ends[-2]
    past = history.filter(day__lte=settled)
    key = f"history-fold:{organization.pk}:{ends[0]}:{settled}:{_points(past)}"
    fold = cache.get(key)
    if fold is None:
        fold = _Fold().add(past, ends[:-1])
        cache.set(key, fold, SERIES_CACHE_SECONDS)
    return fold.add(history.filter(day__gt=settled, day__lte=ends[-1]), ends[-1:]).series


class _Fold:
    """Each card's latest numbers (keyed by line, or by company and product for new revenue),
    their sums, and the series of month ends passed."""

    def __init__(self):
        self.current: dict[tuple, tuple[int, Decimal]] = {}
        self.used, self.billed = 0, Decimal(0)
        self.series = []

    def add(self, points, ends: list[datetime.date]) -> "_Fold":
        """Fold `points` (all on or before ends[-1]), closing each of `ends` on the way."""
        remaining = iter(ends)
        end = next(remaining)
        rows = points.order_by("day", "id").values_list(
            "line_id", "psa_company_id", "psa_product_id", "day", "vendor_count", "billed"
        )
        for line_id, company_id, product_id, day, vendor_count, billed_now in rows.iterator(2000):
            while day > end:
                self._close(end)
                end = next(remaining)
            key = ("line", line_id) if line_id is not None else ("new", company_id, product_id)
            old_used, old_billed = self.current.get(key, (0, Decimal(0)))
            new = (vendor_count or 0, billed_now or Decimal(0))
            self.current[key] = new
            self.used += new[0] - old_used
            self.billed += new[1] - old_billed
        self._close(end)
        for end in remaining:
            self._close(end)
        return self

    def _close(self, end: datetime.date) -> None:
        self.series.append({"month": end, "used": self.used, "billed": self.billed})


def months_with_data(series: list) -> int:
    """How many points of the series come after the first change point (leading empty months
    are the time before the first sync)."""
    for index, point in enumerate(series):
        if point["used"] or point["billed"]:
            return len(series) - index
    return 0


def _number(value):
    """A JSON number: an int when whole, else a float (chart points, not accounting)."""
    return int(value) if value == int(value) else float(value)


def chart(series: list, today: datetime.date | None = None) -> dict:
    """The chart contract of static/js/charts.js, from the first month with data on.

    {"labels": [...], "series": [{"label", "data", "color", "dashed"}, …]}
    """
    today = today or timezone.localdate()
    shown = series[len(series) - months_with_data(series) :]
    labels = [
        "Today" if point["month"] == today else dateformat.format(point["month"], "M Y")
        for point in shown
    ]
    return {
        "labels": labels,
        "series": [
            {
                "label": "Active users (KnowBe4)",
                "data": [point["used"] for point in shown],
                "color": "#ff6a13",
                "dashed": False,
            },
            {
                "label": "Billed seats (PSA)",
                "data": [_number(point["billed"]) for point in shown],
                "color": "#4338ca",
                "dashed": True,
            },
        ],
    }
