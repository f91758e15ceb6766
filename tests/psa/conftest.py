import httpx
import pytest

from psa.models import PSAConnection
from psa.providers import PROVIDERS
from reconcile.sync import services as lifecycle
from sandboxes.demo import psa_connection_fields

KINDS = PROVIDERS.kinds()  # a provider is in the contract suite once it is registered


def demo_settings_and_secrets(kind: str, base_url: str) -> tuple[dict, dict]:
    return psa_connection_fields(kind, base_url)


class PSASandbox:
    def __init__(self, base_url: str, kind: str):
        self.base_url, self.kind = base_url, kind

    def faults(self, **faults):
        response = httpx.post(f"{self.base_url}/_sandbox/{self.kind}/faults", json=faults)
        response.raise_for_status()

    def state(self) -> dict:
        return httpx.get(f"{self.base_url}/_sandbox/{self.kind}/state").json()

    def adapter(self, **settings):
        base_settings, secrets = demo_settings_and_secrets(self.kind, self.base_url)
        return PROVIDERS[self.kind].adapter_class(
            settings=base_settings | settings, secrets=secrets
        )


@pytest.fixture(params=KINDS)
def psa_sandbox(request, sandbox):
    return PSASandbox(sandbox.base_url, request.param)


@pytest.fixture
def make_psa_connection(sandbox, organization, owner, django_capture_on_commit_callbacks):
    """Connect the demo PSA of `kind` and run its first import (tasks run inline)."""

    def make(kind="connectwise", **settings):
        base_settings, secrets = demo_settings_and_secrets(kind, sandbox.base_url)
        base_settings |= settings
        check = PROVIDERS[kind].adapter_class(settings=base_settings, secrets=secrets).test()
        connection = lifecycle.connect(
            PSAConnection,
            organization,
            owner,
            kind=kind,
            settings=base_settings | check.settings,
            secrets=secrets,
        )
        from reconcile.core.signals import request_sync

        with django_capture_on_commit_callbacks(execute=True):
            request_sync(connection, trigger="connect", actor=owner)
        connection.refresh_from_db()
        return connection

    return make


@pytest.fixture
def psa_state(sandbox):
    return lambda kind: httpx.get(f"{sandbox.base_url}/_sandbox/{kind}/state").json()


@pytest.fixture
def psa_faults(sandbox):
    def set_faults(kind, **faults):
        httpx.post(f"{sandbox.base_url}/_sandbox/{kind}/faults", json=faults).raise_for_status()

    return set_faults
