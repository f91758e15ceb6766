"""Syncro (SyncroMSP): recurring invoice schedules, quantities set on their line items."""

from reconcile.core.providers import Provider

PROVIDER = Provider(
    kind="syncro",
    label="Syncro",
    adapter="psa.providers.syncro.adapter.SyncroAdapter",
    form="psa.providers.syncro.forms.SyncroForm",
    budget="150 a minute (Syncro allows about 180 per IP address)",
    setup=(
        "In Syncro, open Admin → API Tokens → New Token and choose custom permissions.",
        "Give it Customers - List/Search, Products - List/Search, Recurring Invoices - List and "
        "Recurring Invoices - Edit.",
        "Copy the token and your Syncro address (https://yourname.syncromsp.com).",
    ),
    container_noun="invoice schedule",
    sandbox="sandboxes.syncro.connection_fields",
)
