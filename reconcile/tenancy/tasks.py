"""Worker entry points of the tenancy app (django-q2)."""

from django.core.mail import send_mail

from reconcile.tenancy.models import Invitation


def send_invitation(invitation_id: int, url: str) -> None:
    invitation = (
        Invitation.objects.select_related("organization", "invited_by")
        .filter(pk=invitation_id)
        .first()
    )
    if invitation is None or not invitation.is_open:
        return
    inviter = invitation.invited_by.email if invitation.invited_by else "A colleague"
    send_mail(
        subject=f"You are invited to {invitation.organization.name} on TrueUp",
        message=(
            f"{inviter} invited you to join {invitation.organization.name} on TrueUp "
            f"as {invitation.get_role_display().lower()}.\n\n"
            f"Accept the invitation: {url}\n\n"
            f"The link works until {invitation.expires_at:%Y-%m-%d %H:%M} UTC."
        ),
        from_email=None,
        recipient_list=[invitation.email],
    )
