from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.db.models import BooleanField, ExpressionWrapper, Q
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from reconcile.notifications import services
from reconcile.notifications.forms import PreferencesForm, ThresholdForm
from reconcile.notifications.models import EMAIL_DEFAULTS, Kind, Notification, channels
from reconcile.tenancy import services as tenancy_services
from reconcile.tenancy.access import get_for_org, member_required
from reconcile.tenancy.models import Role

PAGE = 50


def _mine(request):
    """The current member's notifications shown in the app (another's id is a 404)."""
    return Notification.objects.filter(user=request.user, in_app=True)


def _list_context(request) -> dict:
    unread_first = ExpressionWrapper(Q(read_at__isnull=True), output_field=BooleanField())
    notifications = (
        _mine(request)
        .filter(organization=request.organization)
        .order_by(unread_first.desc(), "-created_at", "-id")
    )
    page = Paginator(notifications, PAGE).get_page(request.GET.get("page"))
    return {"page": page}


@member_required()
def index(request):
    return render(request, "notifications/index.html", _list_context(request))


@member_required()
def open_notification(request, notification_id):
    """Follow a notification's link; opening it marks it read."""
    notification = get_for_org(_mine(request), request, pk=notification_id)
    services.mark_read(notification)
    return redirect(notification.url)


@require_POST
@member_required()
def mark_read(request, notification_id):
    notification = get_for_org(_mine(request), request, pk=notification_id)
    services.mark_read(notification)
    if request.htmx:
        return render(request, "notifications/_read.html", {"notification": notification})
    return redirect("notifications:index")


@require_POST
@member_required()
def mark_all_read(request):
    services.mark_all_read(request.user, request.organization.pk)
    if request.htmx:
        return render(request, "notifications/index.html#list", _list_context(request))
    return redirect("notifications:index")


def _defaults_table():
    return [
        (label, [Kind(kind).label for kind in Kind.values if kind in EMAIL_DEFAULTS[role]])
        for role, label in Role.choices
    ]


@member_required()
def preferences(request):
    """Each member chooses for themselves; owners also set the organization's digest threshold."""
    membership = request.membership
    organization = request.organization
    is_owner = membership.role == Role.OWNER
    form = PreferencesForm(request.POST or None, current=channels(membership))
    threshold_form = ThresholdForm(
        initial={
            "digest_threshold_percent": organization.digest_threshold_percent,
            "digest_threshold_users": organization.digest_threshold_users,
        }
    )
    if request.method == "POST" and form.is_valid():
        if services.save_preferences(membership, request.user, form.chosen()):
            messages.success(request, "Your notification choices are saved.")
        return redirect("notifications:settings")
    return render(
        request,
        "notifications/settings.html",
        {
            "form": form,
            "threshold_form": threshold_form,
            "is_owner": is_owner,
            "defaults": _defaults_table(),
        },
    )


@require_POST
@member_required()
def threshold(request):
    if request.membership.role != Role.OWNER:
        raise PermissionDenied("Only owners change the digest threshold.")
    form = ThresholdForm(request.POST)
    if not form.is_valid():
        membership = request.membership
        return render(
            request,
            "notifications/settings.html",
            {
                "form": PreferencesForm(current=channels(membership)),
                "threshold_form": form,
                "is_owner": True,
                "defaults": _defaults_table(),
            },
            status=422,
        )
    organization = request.organization
    changes = {
        name: value
        for name, value in form.cleaned_data.items()
        if getattr(organization, name) != value
    }
    if changes:
        tenancy_services.update_organization(organization, request.user, **changes)
    messages.success(request, "The digest threshold is saved.")
    return redirect("notifications:settings")
