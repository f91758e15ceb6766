"""HaloPSA: recurring invoice lines, OAuth2 client credentials."""

from reconcile.core.providers import Provider

PROVIDER = Provider(
    kind="halo",
    label="HaloPSA",
    adapter="psa.providers.halo.adapter.HaloAdapter",
    form="psa.providers.halo.forms.HaloForm",
    budget="not limited; TrueUp backs off when HaloPSA answers 429",
    setup=(
        "In HaloPSA, open Configuration → Integrations → HaloPSA API → View Applications → New.",
        "Choose “Client ID and Secret (Services)”, a login agent, and the permissions "
        "read:customers, read:items, read:invoices and edit:invoices.",
        "Copy the resource server, the client ID and the secret.",
    ),
    container_noun="recurring invoice",
    sandbox="sandboxes.halo.connection_fields",
)
