"""ConnectWise PSA (Manage): agreement additions, absolute quantities by JSON Patch."""

from reconcile.core.providers import Provider

PROVIDER = Provider(
    kind="connectwise",
    label="ConnectWise PSA",
    adapter="psa.providers.connectwise.adapter.ConnectWiseAdapter",
    form="psa.providers.connectwise.forms.ConnectWiseForm",
    budget="not limited; TrueUp backs off when ConnectWise answers 429",
    setup=(
        "In ConnectWise PSA, create an API member (System → Members → API Members) with a "
        "security role that can read companies, the product catalogue and agreements, and edit "
        "agreement additions.",
        "Generate its public and private keys.",
        "Register a Client ID at developer.connectwise.com.",
    ),
    container_noun="agreement",
    sandbox="sandboxes.connectwise.connection_fields",
)
