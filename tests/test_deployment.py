"""The deployment files hold together (CI has no Docker daemon to run them)."""

from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent


def test_compose_runs_web_worker_and_postgres_with_a_health_check():
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    services = compose["services"]
    assert {"db", "migrate", "web", "worker"} <= set(services)
    assert "gunicorn reconcile.wsgi" in services["web"]["command"]
    assert services["worker"]["command"] == "python manage.py qcluster"
    assert "/healthz" in " ".join(services["web"]["healthcheck"]["test"])
    for name in ("web", "worker", "migrate"):
        environment = services[name]["environment"]
        assert environment["DATABASE_URL"].startswith("postgres://")
        assert "TRUEUP_ENCRYPTION_KEYS" in environment
    assert services["redis"]["profiles"] == ["redis"]


def test_the_image_ships_every_front_end_library_make_installs():
    dockerfile = (ROOT / "Dockerfile").read_text()
    makefile = (ROOT / "Makefile").read_text()
    for library in ("htmx.min.js", "chart.umd.min.js"):
        assert library in makefile and library in dockerfile, library
