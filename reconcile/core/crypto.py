"""Credentials at rest: Fernet tokens under TRUEUP_ENCRYPTION_KEYS (newest key first).

MultiFernet encrypts with the first key and decrypts with any, so adding a new key in front
rotates encryption without a flag day; `rotate()` re-encrypts a token with the newest key.
"""

from functools import cache

from cryptography.fernet import Fernet, MultiFernet
from django.conf import settings


@cache
def _fernet(keys: tuple[str, ...]) -> MultiFernet:
    return MultiFernet([Fernet(key.encode()) for key in keys])


def _current() -> MultiFernet:
    return _fernet(tuple(settings.TRUEUP_ENCRYPTION_KEYS))


def encrypt(plaintext: str) -> str:
    return _current().encrypt(plaintext.encode()).decode()


def decrypt(token: str) -> str:
    return _current().decrypt(token.encode()).decode()


def rotate(token: str) -> str:
    return _current().rotate(token.encode()).decode()
