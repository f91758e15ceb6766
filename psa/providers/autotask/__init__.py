"""Autotask PSA: recurring contract services, units changed by dated adjustments."""

from reconcile.core.providers import Provider

PROVIDER = Provider(
    kind="autotask",
    label="Autotask PSA",
    adapter="psa.providers.autotask.adapter.AutotaskAdapter",
    form="psa.providers.autotask.forms.AutotaskForm",
    budget="5,000 an hour (half Autotask's shared 10,000)",
)
