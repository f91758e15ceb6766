"""HaloPSA: recurring invoice lines, OAuth2 client credentials."""

from reconcile.core.providers import Provider

PROVIDER = Provider(
    kind="halo",
    label="HaloPSA",
    adapter="psa.providers.halo.adapter.HaloAdapter",
    form="psa.providers.halo.forms.HaloForm",
    budget="not limited; TrueUp backs off when HaloPSA answers 429",
)
