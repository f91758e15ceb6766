"""PSA kinds and their adapter classes: a fourth PSA is one module and one line here."""

from django.utils.module_loading import import_string

ADAPTERS = {
    "connectwise": "psa.adapters.connectwise.ConnectWiseAdapter",
    "autotask": "psa.adapters.autotask.AutotaskAdapter",
    "halo": "psa.adapters.halo.HaloAdapter",
}


def adapter_class(kind: str):
    return import_string(ADAPTERS[kind])
