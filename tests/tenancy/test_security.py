"""Security hardening: login throttling, two-factor sign-in, headers, CSP, CSRF, and no
secret in any page, log or audit record."""

import logging

import pytest
from django.test import Client
from django.urls import reverse
from django_otp.oath import TOTP
from django_otp.plugins.otp_totp.models import TOTPDevice

from integrations.models import VendorConnection
from psa.models import PSAConnection
from reconcile.core.signals import request_sync
from reconcile.sync import services as lifecycle
from reconcile.tenancy.models import AuditEvent
from sandboxes.demo import psa_connection_fields
from tests.conftest import login
from tests.factories import PASSWORD

pytestmark = pytest.mark.django_db


def sign_in(client, user, password=PASSWORD):
    return client.post(reverse("login"), {"username": user.username, "password": password})


def code(device):
    totp = TOTP(device.bin_key, device.step, device.t0, device.digits, device.drift)
    return f"{totp.token():06d}"


def test_five_wrong_passwords_lock_the_login_for_a_while(client, owner):
    for _ in range(4):
        assert sign_in(client, owner, "wrong").status_code == 200
    assert sign_in(client, owner, "wrong").status_code == 429  # the fifth locks
    locked = sign_in(client, owner)  # the right password, too late
    assert locked.status_code == 429
    assert "Too many sign-in attempts" in locked.content.decode()
    assert "_auth_user_id" not in client.session


def test_the_login_form_signs_in_with_the_right_password(client, owner):
    response = sign_in(client, owner)
    assert response.status_code == 302 and client.session["_auth_user_id"] == str(owner.pk)


def test_two_factor_setup_then_every_sign_in_asks_for_the_code(client, owner, settings):
    settings.OTP_TOTP_THROTTLE_FACTOR = 0  # the wrong code below would delay the right one
    login(client, owner)
    page = client.get(reverse("tenancy:two_factor"))
    assert "<svg" in page.content.decode()  # the QR code, drawn server-side
    device = TOTPDevice.objects.get(user=owner, confirmed=False)
    wrong = client.post(reverse("tenancy:two_factor"), {"token": "000000"})
    assert "wrong or expired" in wrong.content.decode()
    client.post(reverse("tenancy:two_factor"), {"token": code(device)})
    device.refresh_from_db()
    assert device.confirmed
    assert AuditEvent.objects.filter(action="security.two_factor_enabled").exists()

    # The code just used cannot be used twice (replay protection): as if 30 s had passed.
    TOTPDevice.objects.filter(pk=device.pk).update(last_t=-1)
    fresh = Client()
    assert sign_in(fresh, owner).status_code == 302
    blocked = fresh.get(reverse("review:index"))
    assert blocked.status_code == 302
    assert blocked.url.startswith(reverse("tenancy:two_factor_verify"))
    response = fresh.post(
        reverse("tenancy:two_factor_verify"), {"token": code(device), "next": "/review/"}
    )
    assert response.status_code == 302 and response.url == "/review/"
    assert fresh.get(reverse("review:index")).status_code == 200


def test_an_owner_can_require_two_factor_for_everyone(client, owner, member_factory):
    login(client, owner)
    response = client.post(reverse("tenancy:two_factor_require"), {"require": "1"}, follow=True)
    assert "Set up your own authenticator app first" in response.content.decode()
    client.get(reverse("tenancy:two_factor"))
    device = TOTPDevice.objects.get(user=owner)
    client.post(reverse("tenancy:two_factor"), {"token": code(device)})
    client.post(reverse("tenancy:two_factor_require"), {"require": "1"})
    owner.memberships.first().organization.refresh_from_db()
    member = Client()
    login(member, member_factory("finance"))
    response = member.get(reverse("review:index"))
    assert response.status_code == 302 and response.url.startswith(reverse("tenancy:two_factor"))


def test_pages_carry_the_security_headers(owner_client):
    response = owner_client.get(reverse("home"))
    policy = response["Content-Security-Policy"]
    assert "script-src 'self'" in policy and "frame-ancestors 'none'" in policy
    assert "unsafe-inline" not in policy and "unsafe-eval" not in policy
    assert response["X-Frame-Options"] == "DENY"
    assert response["X-Content-Type-Options"] == "nosniff"
    assert b"<script>" not in response.content  # no inline script anywhere


def test_posts_without_the_csrf_token_are_refused(owner):
    client = Client(enforce_csrf_checks=True)
    login(client, owner)
    assert client.post(reverse("review:test_mode")).status_code == 403
    assert client.post(reverse("sync:sync_all")).status_code == 403


def test_weak_passwords_are_refused_at_sign_up(client):
    response = client.post(
        reverse("tenancy:signup"),
        {
            "organization_name": "New MSP",
            "email": "new@msp.example",
            "password1": "password",
            "password2": "password",
        },
    )
    assert response.status_code == 200 and "too common" in response.content.decode()


def test_no_key_in_any_page_log_or_audit_record(
    sandbox, organization, owner, owner_client, caplog, django_capture_on_commit_callbacks
):
    """Connect KnowBe4 through its page and a PSA, import both, and look for the secrets in
    every page, every log record and every audit record."""
    caplog.set_level(logging.DEBUG)
    with django_capture_on_commit_callbacks(execute=True):
        owner_client.post(
            reverse("integrations:connect_knowbe4"),
            {"region": "us", "api_key": sandbox.demo_key, "description": "Demo"},
        )
    settings, secrets = psa_connection_fields("connectwise", sandbox.base_url)
    with django_capture_on_commit_callbacks(execute=True):
        connection = lifecycle.connect(
            PSAConnection,
            organization,
            owner,
            kind="connectwise",
            settings=settings,
            secrets=secrets,
        )
        request_sync(connection, trigger="connect", actor=owner)
    assert VendorConnection.objects.get().state == "active"
    keys = [sandbox.demo_key, *(value for value in secrets.values() if len(value) >= 8)]
    pages = [
        reverse("home"),
        reverse("integrations"),
        reverse("sync:status"),
        reverse("tenancy:activity"),
        reverse("review:index"),
        reverse("mapping:accounts"),
        reverse("integrations:detail", args=[VendorConnection.objects.get().pk]),
        reverse("psa:detail", args=[connection.pk]),
        reverse("psa:rotate", args=[connection.pk]),
    ]
    for url in pages:
        body = owner_client.get(url).content.decode()
        for key in keys:
            assert key not in body, url
    logged = "\n".join(record.getMessage() + repr(record.__dict__) for record in caplog.records)
    audit = repr(list(AuditEvent.objects.values()))
    for key in keys:
        assert key not in logged and key not in audit
