"""Providers: one folder per integration on each side, one registry per side.

A provider is everything one kind of connection needs: its label, its adapter class, its
connect form and its defaults. It lives in its own package (`psa/providers/<kind>/`,
`integrations/providers/<kind>/`) whose `__init__.py` declares `PROVIDER`; the side's
registry lists the packages, one line each. Kinds come from the registry, so adding one needs
no choices migration, and every test that runs per kind takes the kinds from it.
"""

from dataclasses import dataclass
from functools import cached_property
from importlib import import_module

from django.utils.module_loading import import_string


@dataclass(frozen=True)
class Provider:
    kind: str  # stored in the connection's `kind` column
    label: str  # "ConnectWise PSA"
    adapter: str  # dotted path of the adapter class
    form: str = ""  # dotted path of the connect form ("" when the provider has its own views)
    # Dotted path of the form that replaces the credentials ("": the connect form). A form
    # gives `settings()` and `secrets()`, and `expires_on` where the credential has one.
    rotate_form: str = ""
    # What TrueUp keeps to when a connection sets no request budget, in words.
    budget: str = "not limited; TrueUp backs off when the API answers 429"
    # False for a provider without an outside credential (CSV uploads): no rotate, no test.
    has_credential: bool = True
    # What a person calls the credential ("key" for an API key), in "Rotate credentials".
    credential_noun: str = "credentials"
    # What a person does in the outside product before connecting, one step each (connect page).
    setup: tuple[str, ...] = ()
    # What the API calls the recurring billing a seat line sits on ("agreement").
    container_noun: str = ""
    # Dotted path of `connection_fields(base_url, slug) -> (settings, secrets)`: what a person
    # would type into the connect form for a partner of the built-in sandbox.
    sandbox: str = ""

    @cached_property
    def adapter_class(self):
        return import_string(self.adapter)

    @cached_property
    def form_class(self):
        return import_string(self.form) if self.form else None

    @cached_property
    def rotate_form_class(self):
        return import_string(self.rotate_form or self.form)

    def sandbox_fields(self, base_url: str, slug: str = "demo") -> tuple[dict, dict]:
        if not self.sandbox:
            raise ValueError(f"{self.label} has no sandbox")
        return import_string(self.sandbox)(base_url, slug)


class Registry:
    """The providers of one side, in the order their packages are listed."""

    def __init__(self, packages: list[str]):
        self.packages = packages

    @cached_property
    def _providers(self) -> dict[str, Provider]:
        providers = [import_module(package).PROVIDER for package in self.packages]
        return {provider.kind: provider for provider in providers}

    def __getitem__(self, kind: str) -> Provider:
        return self._providers[kind]

    def __contains__(self, kind) -> bool:
        return kind in self._providers

    def __iter__(self):
        return iter(self._providers.values())

    def kinds(self) -> list[str]:
        return list(self._providers)

    def choices(self) -> list[tuple[str, str]]:
        return [(provider.kind, provider.label) for provider in self]

    def label(self, kind: str) -> str:
        return self._providers[kind].label if kind in self._providers else kind
