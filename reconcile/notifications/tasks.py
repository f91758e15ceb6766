"""Worker entry points of the notifications app (django-q2). Both also run on schedules made
by migration 0002: sending every five minutes (retries), the credential check daily."""

from reconcile.notifications import services


def send_pending() -> str:
    result = services.send_pending()
    return f"{result['sent']} sent, {result['failed']} failed"


def check_credential_expiry() -> str:
    return f"{services.check_credential_expiry()} notifications"
