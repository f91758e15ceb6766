"""The vendors whose usage TrueUp reads: one package per kind, one line each here.

A package `integrations/providers/<kind>/` declares `PROVIDER` in its `__init__.py`;
"Adding a provider" in docs/ARCHITECTURE.md says how.
"""

from reconcile.core.providers import Registry

PROVIDERS = Registry(
    [
        "integrations.providers.knowbe4_partner",
        "integrations.providers.knowbe4_reporting",
        "integrations.providers.csv_upload",
    ]
)
