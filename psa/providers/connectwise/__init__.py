"""ConnectWise PSA (Manage): agreement additions, absolute quantities by JSON Patch."""

from reconcile.core.providers import Provider

PROVIDER = Provider(
    kind="connectwise",
    label="ConnectWise PSA",
    adapter="psa.providers.connectwise.adapter.ConnectWiseAdapter",
    form="psa.providers.connectwise.forms.ConnectWiseForm",
    budget="not limited; TrueUp backs off when ConnectWise answers 429",
)
