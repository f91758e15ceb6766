from django import template

from reconcile.core.connections import PollingInterval
from reconcile.sync.views import status_context

register = template.Library()


@register.inclusion_tag("sync/_connection_status.html", takes_context=True)
def sync_status(context, connection):
    """`{% sync_status connection %}`: the status block, for pages of the apps below sync."""
    return status_context(connection) | {
        "request": context.get("request"),
        "is_owner": context.get("is_owner"),
        "csrf_token": context.get("csrf_token"),
    }


@register.inclusion_tag("sync/_schedule.html", takes_context=True)
def sync_schedule(context, connection):
    """`{% sync_schedule connection %}`: the polling interval form of a connection."""
    return {
        "connection": connection,
        "kind": status_context(connection)["kind"],
        "choices": PollingInterval.choices,
        "is_owner": context.get("is_owner"),
        "csrf_token": context.get("csrf_token"),
    }
