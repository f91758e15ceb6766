"""CSV usage pages: create a connection, upload a file, map its columns, preview, confirm."""

from django.contrib import messages
from django.core.paginator import Paginator
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST

from integrations.models import CsvUpload, VendorConnection
from integrations.providers.csv_upload import parser, services
from integrations.providers.csv_upload.forms import ConnectionForm, MappingForm, UploadForm
from integrations.providers.csv_upload.parser import DELIMITERS, ENCODINGS, CsvRefused
from reconcile.tenancy.access import get_for_org, member_required
from reconcile.tenancy.models import Role

ERRORS_SHOWN = 500
ROWS_PER_PAGE = 50


def _connection(request, connection_id) -> VendorConnection:
    return get_for_org(VendorConnection, request, pk=connection_id, kind="csv_upload")


def _upload(request, upload_id) -> CsvUpload:
    return get_for_org(
        CsvUpload.objects.select_related("connection", "profile"), request, pk=upload_id
    )


def _not_open(request, upload: CsvUpload):
    """Where to go when an upload was already confirmed or discarded."""
    messages.info(request, f"{upload.file_name} was already {upload.get_state_display().lower()}.")
    return redirect("integrations:csv_connection", upload.connection_id)


@member_required(Role.BILLING)
def new_connection(request):
    form = ConnectionForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        connection = services.create_connection(
            request.organization, request.user, form.cleaned_data["description"]
        )
        messages.success(request, "Connection created: upload its first file.")
        return redirect("integrations:csv_connection", connection.pk)
    return render(request, "integrations/csv_new.html", {"form": form})


@member_required(Role.BILLING)
def connection(request, connection_id):
    """The connection's page: status, the upload form, saved mappings and earlier files."""
    connection = _connection(request, connection_id)
    uploads = connection.csv_uploads.select_related("profile", "created_by")
    last_profile = uploads.exclude(profile=None).values_list("profile_id", flat=True).first()
    form = UploadForm(
        request.POST or None,
        request.FILES or None,
        connection=connection,
        initial={"profile": last_profile},
    )
    if request.method == "POST" and form.is_valid():
        try:
            upload = services.receive(
                connection, request.user, form.cleaned_data["file"], form.cleaned_data["profile"]
            )
        except CsvRefused as refusal:
            form.add_error("file", str(refusal))
        else:
            if upload.profile:
                return redirect("integrations:csv_preview", upload.pk)
            return redirect("integrations:csv_mapping", upload.pk)
    recent = list(uploads[:12])
    for upload in recent:
        upload.encoding_label = ENCODINGS.get(upload.encoding, upload.encoding)
    return render(
        request,
        "integrations/csv_connection.html",
        {
            "connection": connection,
            "form": form,
            "profiles": connection.csv_profiles.all(),
            "uploads": recent,
            "account_count": connection.accounts.filter(missing_since=None).count(),
        },
    )


@member_required(Role.BILLING)
def mapping(request, upload_id):
    """Choose the file's columns once and save them as a named profile."""
    upload = _upload(request, upload_id)
    if upload.state != CsvUpload.State.PREVIEW:
        return _not_open(request, upload)
    profile = upload.profile
    delimiter = request.POST.get("delimiter") or request.GET.get("delimiter")
    if delimiter not in DELIMITERS:
        delimiter = profile.delimiter if profile else parser.sniff_delimiter(upload.content)
    try:
        columns = parser.header(upload.content, delimiter)
    except CsvRefused as refusal:
        columns = []
        messages.error(request, str(refusal))
    initial = {"delimiter": delimiter, "name": upload.connection.description[:100]}
    if profile:
        initial |= {field: getattr(profile, field) for field in services.PROFILE_FIELDS}
        initial |= {"name": profile.name, "delimiter": delimiter}
    form = MappingForm(
        request.POST if request.method == "POST" else None, columns=columns, initial=initial
    )
    form.fields["delimiter"].widget.attrs |= {  # other columns when the separator changes
        "hx-get": reverse("integrations:csv_mapping", args=[upload.pk]),
        "hx-target": "#csv-mapping",
    }
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        services.save_profile(
            upload,
            request.user,
            name=data["name"].strip(),
            **{field: data[field] for field in services.PROFILE_FIELDS},
        )
        return redirect("integrations:csv_preview", upload.pk)
    context = {
        "upload": upload,
        "connection": upload.connection,
        "form": form,
        "columns": columns,
        "sample": _sample(upload.content, delimiter, len(columns)),
        "encoding": ENCODINGS.get(upload.encoding, upload.encoding),
    }
    if request.htmx:
        return render(request, "integrations/csv_mapping.html#mapping", context)
    return render(request, "integrations/csv_mapping.html", context)


def _sample(content: str, delimiter: str, width: int) -> list[list[str]]:
    try:
        rows = parser.sample(content, delimiter)
    except CsvRefused:
        return []
    return [(row + [""] * width)[:width] for row in rows]


@member_required(Role.BILLING)
def preview(request, upload_id):
    """The parsed rows and every error, before anything is stored."""
    upload = _upload(request, upload_id)
    if upload.state != CsvUpload.State.PREVIEW:
        return _not_open(request, upload)
    if upload.profile is None:
        return redirect("integrations:csv_mapping", upload.pk)
    found = services.preview(upload)
    result = found.result
    page = Paginator(result.rows, ROWS_PER_PAGE).get_page(request.GET.get("page"))
    context = {
        "upload": upload,
        "connection": upload.connection,
        "preview": found,
        "result": result,
        "errors": result.errors[:ERRORS_SHOWN],
        "errors_hidden": max(len(result.errors) - ERRORS_SHOWN, 0),
        "page": page,
        "encoding": ENCODINGS.get(upload.encoding, upload.encoding),
        "delimiter": DELIMITERS[upload.profile.delimiter],
    }
    if request.htmx and request.htmx.target == "csv-rows":
        return render(request, "integrations/csv_preview.html#rows", context)
    return render(request, "integrations/csv_preview.html", context)


@member_required(Role.BILLING)
@require_POST
def confirm(request, upload_id):
    upload = _upload(request, upload_id)
    if upload.state != CsvUpload.State.PREVIEW:
        return _not_open(request, upload)
    try:
        services.confirm(upload, request.user)
    except CsvRefused as refusal:
        messages.error(request, str(refusal))
        return redirect("integrations:csv_preview", upload.pk)
    messages.success(
        request, f"{upload.file_name} confirmed: its customers and usage are being imported."
    )
    return redirect("integrations:csv_connection", upload.connection_id)


@member_required(Role.BILLING)
@require_POST
def discard(request, upload_id):
    upload = _upload(request, upload_id)
    if services.discard(upload, request.user):
        messages.success(request, f"{upload.file_name} was discarded; nothing was imported.")
    return redirect("integrations:csv_connection", upload.connection_id)
