import pytest
from django.contrib.auth import get_user_model
from django.urls import reverse

from reconcile.tenancy.models import AuditEvent, Membership, Organization, Role

pytestmark = pytest.mark.django_db


def signup_data(**overrides):
    return {
        "organization_name": "Blue Harbor IT",
        "email": "Ana@BlueHarbor.example",
        "password1": "a-long-pass-phrase-42",
        "password2": "a-long-pass-phrase-42",
    } | overrides


def test_sign_up_creates_organization_with_its_first_owner(client):
    response = client.post(reverse("tenancy:signup"), signup_data())
    assert response.status_code == 302
    assert response.url == reverse("integrations")
    organization = Organization.objects.get(name="Blue Harbor IT")
    membership = Membership.objects.get(organization=organization)
    assert membership.user.email == "ana@blueharbor.example"
    assert membership.role == Role.OWNER
    assert list(
        AuditEvent.objects.filter(organization=organization)
        .values_list("action", flat=True)
        .order_by("id")
    ) == ["organization.created", "member.joined"]
    assert client.get(reverse("home")).status_code == 200


@pytest.mark.parametrize(
    "overrides, field, message",
    [
        ({"password2": "something-else-42"}, "password2", "The two passwords differ."),
        ({"password1": "short", "password2": "short"}, "password1", "too short"),
        ({"email": "not-an-email"}, "email", "valid email"),
        ({"organization_name": ""}, "organization_name", "required"),
    ],
)
def test_sign_up_refuses_bad_input_with_a_message(client, overrides, field, message):
    response = client.post(reverse("tenancy:signup"), signup_data(**overrides))
    assert response.status_code == 200
    assert message in " ".join(response.context["form"].errors[field])
    assert not Organization.objects.exists()


def test_sign_up_refuses_an_existing_email(client, owner):
    response = client.post(reverse("tenancy:signup"), signup_data(email=owner.email.upper()))
    assert "exists already" in response.content.decode()
    assert get_user_model().objects.count() == 1


def test_sign_up_can_be_switched_off(client, settings):
    settings.TRUEUP_OPEN_SIGNUP = False
    response = client.post(reverse("tenancy:signup"), signup_data())
    assert response.status_code == 403
    assert "Sign-up is closed" in response.content.decode()
    assert not Organization.objects.exists()


def test_pages_need_sign_in(client):
    response = client.get(reverse("integrations"))
    assert response.status_code == 302
    assert response.url.startswith(reverse("login"))


def test_user_without_organization_is_sent_to_create_one(client, db):
    from tests.conftest import login
    from tests.factories import UserFactory

    login(client, UserFactory())
    assert client.get(reverse("home")).url == reverse("tenancy:no_organization")
    response = client.post(
        reverse("tenancy:no_organization"), {"name": "Solo IT", "currency": "eur"}
    )
    assert response.status_code == 302
    assert Organization.objects.get(name="Solo IT").currency == "EUR"
