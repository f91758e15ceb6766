"""What a person types into TrueUp's PSA connect form for a sandbox partner.

    python -m sandboxes.demo connectwise http://127.0.0.1:8001 [partner]

prints `{"kind", "settings", "secrets"}` as JSON, split the way the form splits the fields;
`make run` hands it to `manage.py load_demo` so the demo organization starts with a PSA.
"""

import json
import sys

from sandboxes import autotask, connectwise, halo


def psa_connection_fields(kind: str, base_url: str, slug: str = "demo") -> tuple[dict, dict]:
    if kind == "connectwise":
        c = connectwise.partner_credentials(base_url, slug)
        return (
            {"site": c["site"], "codebase": "", "client_id": c["client_id"]},
            {key: c[key] for key in ("company_id", "public_key", "private_key")},
        )
    if kind == "autotask":
        c = autotask.partner_credentials(base_url, slug)
        return (
            {"zone_lookup_url": c["zone_lookup_url"], "zone_url": "", "username": c["username"]},
            {"secret": c["secret"], "integration_code": c["integration_code"]},
        )
    if kind == "halo":
        c = halo.partner_credentials(base_url, slug)
        return (
            {
                "resource_server": c["resource_server"],
                "auth_server": c["auth_server"],
                "tenant": c["tenant"],
            },
            {"client_id": c["client_id"], "client_secret": c["client_secret"]},
        )
    raise ValueError(f"no PSA sandbox {kind!r}")


if __name__ == "__main__":
    kind, base_url, *rest = sys.argv[1:]
    settings, secrets = psa_connection_fields(kind, base_url, *rest)
    print(json.dumps({"kind": kind, "settings": settings, "secrets": secrets}))
