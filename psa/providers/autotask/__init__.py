"""Autotask PSA: recurring contract services, units changed by dated adjustments."""

from reconcile.core.providers import Provider

PROVIDER = Provider(
    kind="autotask",
    label="Autotask PSA",
    adapter="psa.providers.autotask.adapter.AutotaskAdapter",
    form="psa.providers.autotask.forms.AutotaskForm",
    budget="5,000 an hour (half Autotask's shared 10,000)",
    setup=(
        "In Autotask, create an API-only user (Admin → Resources/Users) with the API User "
        "(system) security level.",
        "Copy its user name, secret and the API tracking identifier (integration code).",
        "TrueUp finds your zone from the user name. Autotask allows 10,000 requests an hour for "
        "all integrations together; TrueUp keeps well below.",
    ),
    container_noun="contract",
    sandbox="sandboxes.autotask.connection_fields",
)
