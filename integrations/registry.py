"""Vendor connection kinds and their adapter classes: a new vendor is one folder and one line."""

from django.utils.module_loading import import_string

from integrations.services import exclusion_patterns

ADAPTERS = {
    "knowbe4_partner": "integrations.knowbe4.partner.PartnerAdapter",
    "knowbe4_reporting": "integrations.knowbe4.reporting.ReportingAdapter",
    "csv_upload": "integrations.csv_usage.adapter.CsvUsageAdapter",
}


def adapter_class(kind: str):
    return import_string(ADAPTERS[kind])


def adapter_for(connection):
    cls = adapter_class(connection.kind)
    if hasattr(cls, "for_connection"):  # no URL and key: builds itself from the connection
        return cls.for_connection(connection)
    # An adapter that sees single users applies the accounts' exclusion patterns, handed in
    # as data: adapters never touch the database.
    options = {}
    if getattr(cls, "sees_users", False):
        options["exclusions"] = exclusion_patterns(connection)
    return cls(
        base_url=connection.base_url,
        credential=connection.credential(),
        api_schema=connection.api_schema,
        **options,
    )
