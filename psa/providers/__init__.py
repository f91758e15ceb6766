"""The PSAs TrueUp bills through: one package per PSA, one line each here.

A package `psa/providers/<kind>/` declares `PROVIDER` (label, adapter, connect form, default
request budget) in its `__init__.py`; "Adding a provider" in docs/ARCHITECTURE.md says how.
"""

from reconcile.core.providers import Registry

PROVIDERS = Registry(
    [
        "psa.providers.connectwise",
        "psa.providers.autotask",
        "psa.providers.halo",
        "psa.providers.syncro",
    ]
)
