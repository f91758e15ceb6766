from django.urls import path

from reconcile.tenancy import two_factor, views

app_name = "tenancy"

urlpatterns = [
    path("signup/", views.signup, name="signup"),
    path("organization/new/", views.no_organization, name="no_organization"),
    path("organization/<int:organization_id>/switch/", views.switch_organization, name="switch"),
    path("settings/", views.organization_settings, name="settings"),
    path("settings/members/", views.members, name="members"),
    path("settings/members/<int:membership_id>/role/", views.change_role, name="change_role"),
    path("settings/members/<int:membership_id>/remove/", views.remove_member, name="remove_member"),
    path(
        "settings/invitations/<int:invitation_id>/revoke/",
        views.revoke_invitation,
        name="revoke_invitation",
    ),
    path("invite/<str:token>/", views.accept_invitation, name="accept_invitation"),
    path("activity/", views.activity, name="activity"),
    path("settings/security/", two_factor.setup, name="two_factor"),
    path("settings/security/disable/", two_factor.disable, name="two_factor_disable"),
    path(
        "settings/security/require/",
        two_factor.require_for_organization,
        name="two_factor_require",
    ),
    path("login/verify/", two_factor.verify, name="two_factor_verify"),
]
