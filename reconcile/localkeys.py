"""Keys a newcomer's first run generates and keeps under var/.

Production sets SECRET_KEY and TRUEUP_ENCRYPTION_KEYS in the environment; with nothing set,
`make run` must still work and keep working across restarts, so the keys are generated once and
stored next to the SQLite database (git-ignored, mode 0600).
"""

import secrets
from pathlib import Path

from cryptography.fernet import Fernet


def _read_or_create(path: Path, generate) -> str:
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.touch(mode=0o600)
        path.write_text(generate())
    return path.read_text().strip()


def secret_key(var_dir: Path) -> str:
    return _read_or_create(var_dir / "secret_key", lambda: secrets.token_urlsafe(50))


def encryption_keys(var_dir: Path) -> str:
    return _read_or_create(var_dir / "encryption_keys", lambda: Fernet.generate_key().decode())
