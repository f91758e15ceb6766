"""What a person types into TrueUp's PSA connect form for a sandbox partner.

    python -m sandboxes.demo connectwise http://127.0.0.1:8001 [partner]

prints `{"kind", "settings", "secrets"}` as JSON, split the way the form splits the fields;
`make run` hands it to `manage.py load_demo` so the demo organization starts with a PSA. Each
PSA provider names its sandbox's `connection_fields` (`Provider.sandbox`).
"""

import json
import sys

from psa.providers import PROVIDERS


def psa_connection_fields(kind: str, base_url: str, slug: str = "demo") -> tuple[dict, dict]:
    if kind not in PROVIDERS:
        raise ValueError(f"no PSA sandbox {kind!r}")
    return PROVIDERS[kind].sandbox_fields(base_url, slug)


if __name__ == "__main__":
    kind, base_url, *rest = sys.argv[1:]
    settings, secrets = psa_connection_fields(kind, base_url, *rest)
    print(json.dumps({"kind": kind, "settings": settings, "secrets": secrets}))
