"""Vendor connection kinds and their adapter classes: a new vendor is one folder and one line."""

from django.utils.module_loading import import_string

ADAPTERS = {
    "knowbe4_partner": "integrations.knowbe4.partner.PartnerAdapter",
}


def adapter_class(kind: str):
    return import_string(ADAPTERS[kind])


def adapter_for(connection):
    return adapter_class(connection.kind)(
        base_url=connection.base_url,
        credential=connection.credential(),
        api_schema=connection.api_schema,
    )
