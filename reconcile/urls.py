from django.contrib.auth import views as auth_views
from django.urls import include, path

from reconcile import views
from reconcile.tenancy.views import logout_view

urlpatterns = [
    path("", views.home, name="home"),
    path("healthz", views.healthz, name="healthz"),
    path("login/", auth_views.LoginView.as_view(redirect_authenticated_user=True), name="login"),
    path("logout/", logout_view, name="logout"),
    path("", include("reconcile.tenancy.urls")),
    path("integrations/", views.integrations, name="integrations"),
    path("integrations/vendor/", include("integrations.urls")),
    path("integrations/psa/", include("psa.urls")),
    path("sync/", include("reconcile.sync.urls")),
    path("mapping/", include("reconcile.mapping.urls")),
    path("review/", include("reconcile.review.urls")),
    path("notifications/", include("reconcile.notifications.urls")),
]
