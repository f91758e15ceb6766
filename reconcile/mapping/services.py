"""Mapping vendor accounts to PSA companies and vendor services to PSA products.

Every change is tenant-scoped by the caller (views load objects through the organization) and
written to the audit log in the same transaction; bulk changes write one event listing the pairs.
"""

import hashlib

from django.core.cache import cache
from django.db import models, transaction
from django.db.models import F
from django.utils import timezone

from integrations.models import VendorAccount, VendorService
from psa.models import PSACompany, PSAProduct
from reconcile.core.fragments import RowsDigest
from reconcile.mapping.matching import (
    NameKeys,
    Suggestion,
    auto_index,
    auto_key,
    auto_match,
    best_candidates,
    name_keys,
)
from reconcile.mapping.models import (
    AccountMapping,
    MappingState,
    MatchAlias,
    RejectedSuggestion,
    ServiceMapping,
    Source,
)
from reconcile.tenancy import audit

KEY_FIELDS = ["name_full", "name_core", "name_legal", "keys_for"]


def refresh_keys(model: type[models.Model], organization) -> int:
    """Compute the matching keys of every row whose name changed since it was keyed."""
    rows = list(
        model.objects.filter(organization=organization).exclude(keys_for=F("name")).only("name")
    )
    for row in rows:
        keys = name_keys(row.name)
        row.name_full, row.name_core, row.name_legal = (
            keys.full[:300],
            keys.core[:300],
            keys.legal[:100],
        )
        row.keys_for = row.name[:300]
    model.objects.bulk_update(rows, KEY_FIELDS, batch_size=1000)
    return len(rows)


def _keys(row) -> NameKeys:
    return NameKeys(row.name_full, row.name_core, row.name_legal)


def unmapped_accounts(organization):
    return VendorAccount.objects.filter(
        organization=organization, missing_since=None, mapping__isnull=True
    )


def live_companies(organization):
    return PSACompany.objects.filter(organization=organization, missing_since=None)


def _pairs(mappings) -> list[dict]:
    return [{"account": m.vendor_account.name, "company": m.psa_company.name} for m in mappings]


@transaction.atomic
def auto_map(organization, actor=None) -> list[AccountMapping]:
    """Map unmapped accounts whose name equals a PSA company's (case and spacing aside) or an
    alias a person confirmed. Never fuzzy: a near name is only ever a suggestion."""
    index = auto_index(live_companies(organization).values_list("id", "name"))
    aliases = auto_index(
        MatchAlias.objects.filter(organization=organization).values_list(
            "psa_company_id", "vendor_name"
        )
    )
    created = []
    for account in unmapped_accounts(organization).only("id", "name"):
        company_id = auto_match(account.name, index, aliases)
        if company_id is not None:
            source = Source.ALIAS if auto_key(account.name) in aliases else Source.AUTO
            created.append(
                AccountMapping(
                    organization=organization,
                    vendor_account=account,
                    psa_company_id=company_id,
                    state=MappingState.MAPPED,
                    source=source,
                    score=100.0,
                    mapped_by=actor,
                )
            )
    AccountMapping.objects.bulk_create(created, batch_size=1000)
    if created:
        mapped = AccountMapping.objects.filter(pk__in=[m.pk for m in created]).select_related(
            "vendor_account", "psa_company"
        )
        audit.record(
            organization,
            actor,
            "mapping.auto_mapped",
            None,
            after={"count": len(created), "pairs": _pairs(mapped)},
        )
    return created


def _set_mapping(account: VendorAccount, actor, action: str, **values) -> AccountMapping:
    """Create or replace the account's mapping, auditing what it was and what it is."""
    current = (
        AccountMapping.objects.filter(vendor_account=account).select_related("psa_company").first()
    )
    before = _describe(current)
    mapping, _ = AccountMapping.objects.update_or_create(
        vendor_account=account,
        defaults={"organization_id": account.organization_id, "mapped_by": actor, **values},
    )
    audit.record(
        account.organization, actor, action, mapping, before=before, after=_describe(mapping)
    )
    return mapping


@transaction.atomic
def map_account(
    account: VendorAccount,
    company: PSACompany,
    actor,
    *,
    source=Source.MANUAL,
    score: float | None = None,
) -> AccountMapping:
    """Map (or move) an account to a company of the same organization."""
    if account.organization_id != company.organization_id:
        raise ValueError("The account and the company belong to different organizations.")
    return _set_mapping(
        account,
        actor,
        "mapping.account_mapped",
        psa_company=company,
        state=MappingState.MAPPED,
        source=source,
        score=score,
    )


@transaction.atomic
def exclude_account(account: VendorAccount, actor) -> AccountMapping:
    """Leave the account out of reconciliation and of the unmapped count."""
    return _set_mapping(
        account,
        actor,
        "mapping.account_excluded",
        psa_company=None,
        state=MappingState.EXCLUDED,
        source=Source.MANUAL,
        score=None,
    )


@transaction.atomic
def unmap_account(mapping: AccountMapping, actor) -> None:
    audit.record(
        mapping.vendor_account.organization,
        actor,
        "mapping.account_unmapped",
        mapping,
        before=_describe(mapping),
    )
    mapping.delete()


def _describe(mapping: AccountMapping | None) -> dict | None:
    if mapping is None:
        return None
    return {
        "account": mapping.vendor_account.name,
        "state": mapping.state,
        "company": mapping.psa_company.name if mapping.psa_company_id else None,
        "source": mapping.source,
    }


def suggestions(
    organization, accounts=None
) -> list[tuple[VendorAccount, PSACompany, float, float]]:
    """(account, company, score, runner-up score) for the unmapped accounts whose best PSA
    company clears the threshold and the margin; rejected pairs are never offered.

    Without `accounts`, every unmapped account of the organization, with keys refreshed
    first; a page passes the accounts it loaded after refreshing them itself.

    An account's best candidates are kept in the cache under its name keys, its rejections
    and a digest of every live company's keys (computed by the database): a page scores only
    accounts it has not scored against these very companies.
    """
    if accounts is None:
        refresh_keys(VendorAccount, organization)
        refresh_keys(PSACompany, organization)
        accounts = unmapped_accounts(organization).only("id", "name", *KEY_FIELDS[:3])
    accounts = list(accounts)
    if not accounts:
        return []
    rejected = {}
    for account_id, company_id in RejectedSuggestion.objects.filter(
        vendor_account__in=accounts
    ).values_list("vendor_account_id", "psa_company_id"):
        rejected.setdefault(account_id, set()).add(company_id)
    companies = live_companies(organization).aggregate(digest=RowsDigest("id", *KEY_FIELDS[:3]))
    keys = {
        a.pk: "suggestion:"
        + hashlib.blake2b(
            repr((companies["digest"], _keys(a), sorted(rejected.get(a.pk, ())))).encode(),
            digest_size=16,
        ).hexdigest()
        for a in accounts
    }
    best = cache.get_many(keys.values())
    missing = [a for a in accounts if keys[a.pk] not in best]
    if missing:
        found = _best(organization, missing, rejected)
        fresh = {keys[a.pk]: s for a, s in zip(missing, found, strict=True)}
        cache.set_many(fresh, SUGGESTION_TIMEOUT)
        best |= fresh
    cleared = [(a, best[keys[a.pk]]) for a in accounts if best[keys[a.pk]].clears()]
    chosen = PSACompany.objects.in_bulk([s.psa_index for _, s in cleared])
    return [
        (a, chosen[s.psa_index], s.score, s.runner_up)
        for a, s in cleared
        if s.psa_index in chosen  # not deleted since
    ]


SUGGESTION_TIMEOUT = 3600


def _best(organization, accounts, rejected) -> list[Suggestion]:
    """Each account's best and runner-up company, as suggestions whose `psa_index` is the
    company's id."""
    # Every company is a candidate, so they are read as plain values (no model instances).
    companies = list(
        live_companies(organization).order_by("name", "id").values_list("id", *KEY_FIELDS[:3])
    )
    company_at = {row[0]: i for i, row in enumerate(companies)}
    found = best_candidates(
        [_keys(a) for a in accounts],
        tuple(NameKeys(*row[1:]) for row in companies),
        rejected=[
            (i, company_at[c])
            for i, a in enumerate(accounts)
            for c in rejected.get(a.pk, ())
            if c in company_at
        ],
    )
    return [
        s._replace(psa_index=None if s.psa_index is None else companies[s.psa_index][0])
        for s in found
    ]


@transaction.atomic
def accept_suggestion(
    account: VendorAccount, company: PSACompany, actor, score: float | None = None
) -> AccountMapping:
    """Map as suggested, and remember the name as an alias of the company."""
    mapping = map_account(account, company, actor, source=Source.SUGGESTION, score=score)
    MatchAlias.objects.get_or_create(
        organization_id=account.organization_id,
        vendor_name=auto_key(account.name)[:300],
        psa_company=company,
        defaults={"created_by": actor},
    )
    return mapping


@transaction.atomic
def accept_suggestions(organization, pairs, actor) -> int:
    """Accept several suggestions: one audit event listing the pairs."""
    accepted = []
    for account, company, score in pairs:
        AccountMapping.objects.update_or_create(
            vendor_account=account,
            defaults={
                "organization": organization,
                "psa_company": company,
                "state": MappingState.MAPPED,
                "source": Source.SUGGESTION,
                "score": score,
                "mapped_by": actor,
            },
        )
        MatchAlias.objects.get_or_create(
            organization=organization,
            vendor_name=auto_key(account.name)[:300],
            psa_company=company,
            defaults={"created_by": actor},
        )
        accepted.append(
            {"account": account.name, "company": company.name, "score": round(score, 1)}
        )
    if accepted:
        audit.record(
            organization,
            actor,
            "mapping.suggestions_accepted",
            None,
            after={"count": len(accepted), "pairs": accepted},
        )
    return len(accepted)


@transaction.atomic
def reject_suggestion(account: VendorAccount, company: PSACompany, actor) -> None:
    RejectedSuggestion.objects.get_or_create(
        organization_id=account.organization_id,
        vendor_account=account,
        psa_company=company,
        defaults={"rejected_by": actor},
    )
    audit.record(
        account.organization,
        actor,
        "mapping.suggestion_rejected",
        account,
        after={"account": account.name, "company": company.name},
    )


@transaction.atomic
def map_service(
    service: VendorService, product: PSAProduct, actor, source=Source.MANUAL
) -> ServiceMapping:
    if service.organization_id != product.organization_id:
        raise ValueError("The service and the product belong to different organizations.")
    ServiceMapping.objects.filter(vendor_service=service, state=MappingState.EXCLUDED).delete()
    mapping, _ = ServiceMapping.objects.update_or_create(
        vendor_service=service,
        psa_product=product,
        defaults={
            "organization_id": service.organization_id,
            "state": MappingState.MAPPED,
            "source": source,
            "mapped_by": actor,
        },
    )
    audit.record(
        service.organization,
        actor,
        "mapping.service_mapped",
        mapping,
        after={"service": service.name, "product": str(product)},
    )
    return mapping


@transaction.atomic
def unmap_service(mapping: ServiceMapping, actor) -> None:
    audit.record(
        mapping.vendor_service.organization,
        actor,
        "mapping.service_unmapped",
        mapping,
        before={
            "service": mapping.vendor_service.name,
            "product": str(mapping.psa_product) if mapping.psa_product_id else None,
        },
    )
    mapping.delete()


@transaction.atomic
def exclude_service(service: VendorService, actor) -> ServiceMapping:
    ServiceMapping.objects.filter(vendor_service=service).delete()
    mapping = ServiceMapping.objects.create(
        organization_id=service.organization_id,
        vendor_service=service,
        state=MappingState.EXCLUDED,
        source=Source.MANUAL,
        mapped_by=actor,
    )
    audit.record(
        service.organization,
        actor,
        "mapping.service_excluded",
        mapping,
        after={"service": service.name},
    )
    return mapping


@transaction.atomic
def auto_map_services(organization, actor=None) -> int:
    """Map services whose name equals a product's name (case and spacing aside)."""
    index = auto_index(
        PSAProduct.objects.filter(organization=organization, missing_since=None).values_list(
            "id", "name"
        )
    )
    created = 0
    for service in VendorService.objects.filter(organization=organization, mappings__isnull=True):
        product_id = auto_match(service.name, index)
        if product_id is not None:
            ServiceMapping.objects.create(
                organization=organization,
                vendor_service=service,
                psa_product_id=product_id,
                state=MappingState.MAPPED,
                source=Source.AUTO,
                mapped_by=actor,
            )
            created += 1
    if created:
        audit.record(
            organization, actor, "mapping.services_auto_mapped", None, after={"count": created}
        )
    return created


def finish_missing(connection) -> str:
    """Why the setup of `connection` cannot finish yet, or ""."""
    accounts = AccountMapping.objects.filter(
        vendor_account__connection=connection, state=MappingState.MAPPED
    ).exists()
    service_maps = ServiceMapping.objects.filter(
        vendor_service__connection=connection, state=MappingState.MAPPED
    ).exists()
    if not accounts and not service_maps:
        return "Map at least one customer and one service to finish."
    if not accounts:
        return "Map at least one customer to finish."
    if not service_maps:
        return "Map at least one service to finish."
    return ""


@transaction.atomic
def finish_setup(connection, actor) -> None:
    connection.setup_finished_at = timezone.now()
    connection.save(update_fields=["setup_finished_at"])
    audit.record(
        connection.organization,
        actor,
        "mapping.setup_finished",
        connection,
        after={"connection": str(connection)},
    )
