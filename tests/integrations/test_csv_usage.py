"""CSV usage uploads: parse, map once, preview with per-row errors, confirm into a real sync."""

import re

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from integrations.models import (
    CsvProfile,
    CsvUpload,
    UsageSnapshot,
    VendorAccount,
    VendorConnection,
    VendorService,
)
from integrations.providers.csv_upload import parser, services
from integrations.providers.csv_upload.parser import CsvRefused, Mapping
from reconcile.core.errors import BadAnswer
from reconcile.sync.models import SyncRun
from reconcile.tenancy.models import AuditEvent, Role
from tests.conftest import login
from tests.factories import SyncRunFactory, VendorConnectionFactory

pytestmark = pytest.mark.django_db

MONTH_1 = (
    "Customer,Service,Quantity\r\n"
    "Acme Corp,Cloud Backup,120\r\n"
    "Acme Corp,Email Archiving,45\r\n"
    "Beta Dental,Cloud Backup,12\r\n"
    "Gamma Logistics,Cloud Backup,7\r\n"
)
MAPPING = {
    "delimiter": ",",
    "customer_column": "Customer",
    "service_column": "Service",
    "default_service": "",
    "quantity_column": "Quantity",
    "name": "Acme monthly export",
}


def csv_file(text: str | bytes, name="usage.csv", encoding="utf-8") -> SimpleUploadedFile:
    data = text if isinstance(text, bytes) else text.encode(encoding)
    return SimpleUploadedFile(name, data, content_type="text/csv")


@pytest.fixture
def connection(organization, owner):
    return services.create_connection(organization, owner, "Acme Backup usage")


def upload(client, connection, text, profile=None, **kwargs):
    data = {"file": csv_file(text, **kwargs), "profile": profile.pk if profile else ""}
    return client.post(reverse("integrations:csv_connection", args=[connection.pk]), data)


def map_columns(client, csv_upload, **changes):
    return client.post(reverse("integrations:csv_mapping", args=[csv_upload.pk]), MAPPING | changes)


def parse(text, **mapping):
    return parser.parse(
        text,
        Mapping(
            customer=mapping.get("customer", "Customer"),
            quantity=mapping.get("quantity", "Quantity"),
            service=mapping.get("service", "Service"),
            default_service=mapping.get("default_service", ""),
            delimiter=mapping.get("delimiter", ","),
        ),
    )


def errors_of(result):
    return [(error.row, error.column, error.message) for error in result.errors]


# The parser: every fault becomes a per-row error or a clear refusal.


def test_a_clean_file_reads_every_row():
    result = parse(MONTH_1)
    assert result.ok and result.row_count == 4
    assert [(r.number, r.customer, r.service, r.quantity) for r in result.rows][:2] == [
        (2, "Acme Corp", "Cloud Backup", 120),
        (3, "Acme Corp", "Email Archiving", 45),
    ]
    assert (result.customer_count, result.service_count, result.total_quantity) == (3, 2, 184)
    assert result.rows[0].service_code == "cloud-backup"


def test_a_missing_column_is_refused_for_the_whole_file_naming_the_columns_found():
    result = parse("Customer,Service,Seats\nAcme,Backup,3\n")
    assert not result.ok and result.rows == []
    [(row, column, message)] = errors_of(result)
    assert row is None and column == "Quantity"
    assert "no column “Quantity”" in message and "“Seats”" in message


def test_a_profile_with_another_delimiter_says_so():
    result = parse("Customer;Service;Quantity\nAcme;Backup;3\n")
    assert "separated by semicolon (;)" in result.errors[0].message


@pytest.mark.parametrize(
    "quantity, message",
    [
        ("", "Missing quantity."),
        ("ten", "“ten” is not a number."),
        ("-3", "Negative quantity (-3)"),
        ("12.5", "“12.5” is not a whole number"),
        ("12.0", "“12.0” is not a whole number"),
        ('"1,234"', "“1,234” has a thousands or decimal separator"),
        ("1.234", "“1.234” has a thousands or decimal separator"),
        ("99999999999", "larger than a count can be"),
    ],
)
def test_a_quantity_that_is_not_a_whole_number_is_an_error_of_its_row(quantity, message):
    result = parse(f"Customer,Service,Quantity\nAcme,Backup,3\nBeta,Backup,{quantity}\n")
    assert not result.ok
    [(row, column, text)] = errors_of(result)
    assert (row, column) == (3, "Quantity") and message in text
    assert [r.customer for r in result.rows] == ["Acme"]


def test_a_short_row_reports_each_missing_value():
    result = parse("Customer,Service,Quantity\nAcme\n,Backup,3\n")
    assert errors_of(result) == [
        (2, "Service", "Missing service name (the row has only 1 field)."),
        (2, "Quantity", "Missing quantity (the row has only 1 field)."),
        (3, "Customer", "Missing customer name."),
    ]


def test_a_duplicate_customer_and_service_names_the_row_it_repeats():
    text = "Customer,Service,Quantity\nAcme Corp,Backup,3\nBeta,Backup,1\n\nACME  corp,backup,4\n"
    result = parse(text)
    [(row, column, message)] = errors_of(result)
    assert (row, column) == (5, "Customer")  # blank row 4 still counts, as in a spreadsheet
    assert message.startswith("Duplicate of row 2:")
    assert not result.ok


def test_a_fixed_service_name_when_the_file_has_no_service_column():
    result = parse(
        "Client;Licences\nAcme;3\n",
        customer="client",
        quantity="LICENCES",
        service="",
        default_service="Acme Backup",
        delimiter=";",
    )
    assert result.ok and result.rows[0].service == "Acme Backup"


def test_an_unclosed_quote_is_an_error_not_a_silent_merge_of_rows():
    result = parse('Customer,Service,Quantity\n"Acme,Backup,3\nBeta,Backup,1\n')
    assert not result.ok
    assert "quote" in result.errors[0].message


@pytest.mark.parametrize(
    "data, encoding",
    [
        ("Customer,Service,Quantity\nMüller GmbH,Sauvegarde €,3\n".encode("cp1252"), "cp1252"),
        (
            b"\xef\xbb\xbf" + "Customer,Service,Quantity\nMüller GmbH,Sauvegarde €,3\n".encode(),
            "utf-8-sig",
        ),
        ("Customer,Service,Quantity\nMüller GmbH,Sauvegarde €,3\n".encode(), "utf-8"),
        ("Customer\tService\tQuantity\nMüller GmbH\tSauvegarde €\t3\n".encode("utf-16"), "utf-16"),
    ],
)
def test_encodings_are_detected_and_the_bom_never_sticks_to_the_first_column(data, encoding):
    text, found = parser.decode(data)
    assert found == encoding
    result = parse(text, delimiter=parser.sniff_delimiter(text))
    assert result.ok
    assert (result.rows[0].customer, result.rows[0].service) == ("Müller GmbH", "Sauvegarde €")


@pytest.mark.parametrize(
    "data, message",
    [
        (b"PK\x03\x04rest-of-a-zip", "Excel workbook (.xlsx)"),
        (b"\xd0\xcf\x11\xe0\xa1\xb1", "Excel 97–2003 workbook"),
        (b"Customer,Service,Quantity\n\x81\x8d,Backup,1\n", "neither UTF-8 nor Windows-1252"),
        (b"Customer\x00,Service,Quantity\n", "NUL characters"),
    ],
)
def test_files_that_are_not_csv_text_are_refused(data, message):
    with pytest.raises(CsvRefused, match=re.escape(message)):
        parser.decode(data)


def test_the_delimiter_is_read_from_the_header_not_fooled_by_commas_in_names():
    text = "Customer;Service;Quantity\n" + "Acme, Inc.;Backup, Cloud;3\n" * 3
    assert parser.sniff_delimiter(text) == ";"
    assert parser.sniff_delimiter("Customer\tService\tQuantity\n") == "\t"
    assert parser.sniff_delimiter("Customer\n") == ","


# The pages: upload, map once, preview, confirm; nothing stored before a clean confirm.


def test_the_integrations_page_offers_the_csv_card_to_billing_members(client, member_factory):
    login(client, member_factory(Role.BILLING))
    page = client.get(reverse("integrations")).content.decode()
    assert 'data-testid="csv-card"' in page and reverse("integrations:csv_new") in page


def test_creating_a_connection_needs_no_credential_and_is_synced_by_hand_only(
    client, member_factory
):
    login(client, member_factory(Role.BILLING))
    response = client.post(reverse("integrations:csv_new"), {"description": "Acme Backup usage"})
    connection = VendorConnection.objects.get()
    assert response.url == reverse("integrations:csv_connection", args=[connection.pk])
    assert (connection.kind, connection.secrets_encrypted, connection.settings) == (
        "csv_upload",
        "",
        {},
    )
    assert connection.polling_interval == 0
    assert AuditEvent.objects.filter(action="connection.created").count() == 1
    page = client.get(response.url).content.decode()
    assert "Upload this month's file" in page


def test_a_file_is_mapped_once_previewed_and_imported_through_the_real_sync(
    owner_client, connection, django_capture_on_commit_callbacks
):
    response = upload(owner_client, connection, MONTH_1)
    csv_upload = CsvUpload.objects.get()
    assert response.url == reverse("integrations:csv_mapping", args=[csv_upload.pk])
    assert (csv_upload.encoding, csv_upload.row_count, csv_upload.state) == ("utf-8", 4, "preview")

    page = owner_client.get(response.url).content.decode()
    assert '<option value="Quantity" selected>' in page  # guessed from the header
    assert "Beta Dental" in page  # the first rows, to see which column is which

    response = map_columns(owner_client, csv_upload)
    assert response.url == reverse("integrations:csv_preview", args=[csv_upload.pk])
    profile = CsvProfile.objects.get()
    assert (profile.name, profile.quantity_column, profile.delimiter) == (
        "Acme monthly export",
        "Quantity",
        ",",
    )
    page = owner_client.get(response.url).content.decode()
    assert "Ready to import" in page and "Gamma Logistics" in page and "UTF-8" in page
    assert not VendorAccount.objects.exists()  # nothing stored before the confirmation

    with django_capture_on_commit_callbacks(execute=True):
        response = owner_client.post(reverse("integrations:csv_confirm", args=[csv_upload.pk]))
    assert response.url == reverse("integrations:csv_connection", args=[connection.pk])
    run = SyncRun.objects.get()
    assert (run.state, run.trigger, run.added) == ("succeeded", "manual", 3)
    connection.refresh_from_db()
    assert connection.state == VendorConnection.State.ACTIVE
    accounts = {a.name: a for a in VendorAccount.objects.filter(connection=connection)}
    assert set(accounts) == {"Acme Corp", "Beta Dental", "Gamma Logistics"}
    assert accounts["Beta Dental"].active_users == 12
    assert accounts["Acme Corp"].active_users is None  # two services need not share a unit
    services_ = dict(VendorService.objects.values_list("code", "name"))
    assert services_ == {"cloud-backup": "Cloud Backup", "email-archiving": "Email Archiving"}
    usage = {
        (u.account.name, u.service.code): (u.active_users, u.seats)
        for u in UsageSnapshot.objects.select_related("account", "service")
    }
    assert usage == {
        ("Acme Corp", "cloud-backup"): (120, None),
        ("Acme Corp", "email-archiving"): (45, None),
        ("Beta Dental", "cloud-backup"): (12, None),
        ("Gamma Logistics", "cloud-backup"): (7, None),
    }
    csv_upload.refresh_from_db()
    assert csv_upload.state == CsvUpload.State.IMPORTED and csv_upload.imported_at
    actions = set(AuditEvent.objects.values_list("action", flat=True))
    assert {"csv_upload.received", "csv_profile.created", "csv_upload.confirmed"} <= actions


def test_next_month_the_saved_profile_goes_straight_to_preview_and_the_sync_records_changes(
    owner_client, connection, owner, django_capture_on_commit_callbacks
):
    profile = CsvProfile.objects.create(
        organization=connection.organization,
        connection=connection,
        name="Acme monthly export",
        customer_column="Customer",
        service_column="Service",
        quantity_column="Quantity",
    )
    first = services.receive(connection, owner, csv_file(MONTH_1), profile)
    with django_capture_on_commit_callbacks(execute=True):
        services.confirm(first, owner)
    acme_backup = UsageSnapshot.objects.get(account__name="Acme Corp", service__code="cloud-backup")

    month_2 = (  # Gamma gone, Beta up from 12 to 15, other spellings of the same names
        "customer;service;quantity\n"
        "Acme Corp;Cloud Backup;120\n"
        "acme corp;email archiving;45\n"
        "Beta  Dental;Cloud Backup;15\n"
    )
    profile.delimiter = ";"
    profile.save()
    response = upload(owner_client, connection, month_2.encode("cp1252"), profile=profile)
    second = CsvUpload.objects.get(state=CsvUpload.State.PREVIEW)
    assert response.url == reverse("integrations:csv_preview", args=[second.pk])
    page = owner_client.get(response.url).content.decode()
    assert "0 new customers, 1 with changed quantities, 1 no longer listed" in page
    assert "Gamma Logistics" in page and "Windows-1252" not in page  # ASCII reads as UTF-8

    with django_capture_on_commit_callbacks(execute=True):
        owner_client.post(reverse("integrations:csv_confirm", args=[second.pk]))
    run = SyncRun.objects.order_by("-pk").first()
    assert (run.state, run.added, run.updated, run.unchanged, run.removed) == (
        "succeeded",
        0,
        1,
        1,
        1,
    )
    gamma = VendorAccount.objects.get(name="Gamma Logistics")
    assert gamma.missing_since is not None
    beta = UsageSnapshot.objects.filter(account__name="Beta Dental").order_by("taken_at")
    assert [(u.active_users, u.is_current) for u in beta] == [(12, False), (15, True)]
    assert beta.last().sync_run_id == run.pk
    # Acme did not change: no new point, the first month's is still current.
    assert list(
        UsageSnapshot.objects.filter(account__name="Acme Corp", service__code="cloud-backup")
    ) == [acme_backup]
    first.refresh_from_db()
    assert first.content == ""  # superseded: only the latest confirmed file is kept


def test_errors_block_the_confirmation_and_nothing_is_imported(
    owner_client, connection, django_capture_on_commit_callbacks
):
    text = MONTH_1 + "Delta,Cloud Backup,-1\nAcme Corp,Cloud Backup,5\n"
    upload(owner_client, connection, text)
    csv_upload = CsvUpload.objects.get()
    map_columns(owner_client, csv_upload)
    csv_upload.refresh_from_db()
    assert csv_upload.error_count == 2
    page = owner_client.get(reverse("integrations:csv_preview", args=[csv_upload.pk]))
    page = page.content.decode()
    assert 'data-testid="csv-blocked"' in page and "2 problems found" in page
    assert "Negative quantity (-1)" in page and "Duplicate of row 2" in page
    assert 'data-testid="csv-confirm"' not in page
    with django_capture_on_commit_callbacks(execute=True):
        response = owner_client.post(reverse("integrations:csv_confirm", args=[csv_upload.pk]))
    assert response.url == reverse("integrations:csv_preview", args=[csv_upload.pk])
    csv_upload.refresh_from_db()
    assert csv_upload.state == CsvUpload.State.PREVIEW
    assert not SyncRun.objects.exists() and not VendorAccount.objects.exists()


def test_a_saved_profile_whose_column_is_missing_refuses_the_file_in_the_preview(
    owner_client, connection
):
    upload(owner_client, connection, MONTH_1)
    map_columns(owner_client, CsvUpload.objects.get())
    profile = CsvProfile.objects.get()
    upload(owner_client, connection, "Customer,Service,Seats\nAcme Corp,Cloud Backup,3\n", profile)
    second = CsvUpload.objects.get(state=CsvUpload.State.PREVIEW)
    page = owner_client.get(reverse("integrations:csv_preview", args=[second.pk])).content.decode()
    assert "no column “Quantity”" in page and 'data-testid="csv-confirm"' not in page


def test_a_windows_1252_file_says_how_it_was_read(owner_client, connection):
    text = "Kunde;Dienst;Anzahl\nMüller GmbH;Sicherung;3\nSociété Générale;Sicherung;4\n"
    upload(owner_client, connection, text, encoding="cp1252")
    csv_upload = CsvUpload.objects.get()
    map_columns(
        owner_client,
        csv_upload,
        delimiter=";",
        customer_column="Kunde",
        service_column="Dienst",
        quantity_column="Anzahl",
    )
    page = owner_client.get(reverse("integrations:csv_preview", args=[csv_upload.pk]))
    page = page.content.decode()
    assert "Windows-1252" in page and "Société Générale" in page and "Ready to import" in page


def test_a_file_over_the_row_limit_is_refused_and_nothing_is_stored(owner_client, connection):
    rows = "".join(f"Customer {i},Cloud Backup,{i % 90}\n" for i in range(100_000))
    response = upload(owner_client, connection, "Customer,Service,Quantity\n" + rows)
    assert response.status_code == 200
    page = response.content.decode()
    assert "The file has 100,000 data rows; TrueUp imports at most 50,000" in page
    assert "Nothing was stored" in page
    assert not CsvUpload.objects.exists()
    assert not AuditEvent.objects.filter(action__startswith="csv_").exists()


def test_a_file_over_the_size_limit_is_refused(owner_client, connection, settings):
    settings.TRUEUP_CSV_MAX_BYTES = 1024 * 1024
    response = upload(owner_client, connection, "x" * (1024 * 1024 * 3 // 2))
    assert "The file is 1.5 MB; at most 1.0 MB can be uploaded" in response.content.decode()
    assert not CsvUpload.objects.exists()


def test_an_excel_workbook_is_refused_with_what_to_do(owner_client, connection):
    response = upload(owner_client, connection, b"PK\x03\x04" + b"\x00" * 40, name="usage.xlsx")
    assert "Save As" in response.content.decode() and not CsvUpload.objects.exists()


def test_a_header_without_rows_is_refused(owner_client, connection):
    response = upload(owner_client, connection, "Customer,Service,Quantity\r\n\r\n")
    assert "no data rows" in response.content.decode() and not CsvUpload.objects.exists()


def test_discarding_a_preview_keeps_nothing(owner_client, connection):
    upload(owner_client, connection, MONTH_1)
    csv_upload = CsvUpload.objects.get()
    owner_client.post(reverse("integrations:csv_discard", args=[csv_upload.pk]))
    csv_upload.refresh_from_db()
    assert (csv_upload.state, csv_upload.content) == ("discarded", "")
    response = owner_client.get(reverse("integrations:csv_preview", args=[csv_upload.pk]))
    assert response.url == reverse("integrations:csv_connection", args=[connection.pk])
    assert AuditEvent.objects.filter(action="csv_upload.discarded").exists()


def test_a_new_upload_discards_the_unconfirmed_one(owner, connection):
    first = services.receive(connection, owner, csv_file(MONTH_1))
    services.receive(connection, owner, csv_file(MONTH_1))
    first.refresh_from_db()
    assert first.state == CsvUpload.State.DISCARDED and first.content == ""


def test_the_mapping_page_rereads_the_columns_when_the_separator_changes(owner_client, connection):
    upload(owner_client, connection, "Customer;Service;Quantity\nAcme;Backup;3\n")
    csv_upload = CsvUpload.objects.get()
    url = reverse("integrations:csv_mapping", args=[csv_upload.pk])
    assert '<option value="Service">' in owner_client.get(url).content.decode()
    partial = owner_client.get(url, {"delimiter": ","}, HTTP_HX_REQUEST="true").content.decode()
    assert "<html" not in partial and '<option value="Customer;Service;Quantity"' in partial


def test_a_csv_connection_without_a_confirmed_file_tests_and_fails_its_sync_readably(connection):
    adapter = connection.adapter()
    assert "none is confirmed yet" in adapter.test().message
    with pytest.raises(BadAnswer, match="No CSV file is confirmed"):
        next(adapter.iter_account_pages())


def test_pages_of_accounts_for_a_large_file(owner, connection):
    rows = "".join(f"Customer {i},Cloud Backup,{i % 90}\n" for i in range(2500))
    profile = CsvProfile.objects.create(
        organization=connection.organization,
        connection=connection,
        name="p",
        customer_column="Customer",
        service_column="Service",
        quantity_column="Quantity",
    )
    csv_upload = services.receive(
        connection, owner, csv_file("Customer,Service,Quantity\n" + rows), profile
    )
    CsvUpload.objects.filter(pk=csv_upload.pk).update(state=CsvUpload.State.IMPORTED)
    pages = list(connection.adapter().iter_account_pages())
    assert [(p.number, p.total_pages, len(p.accounts)) for p in pages] == [
        (1, 3, 1000),
        (2, 3, 1000),
        (3, 3, 500),
    ]


def test_confirming_while_an_import_runs_is_refused_so_the_file_is_not_skipped(owner, connection):
    csv_upload = services.receive(connection, owner, csv_file(MONTH_1))
    services.save_profile(
        csv_upload, owner, name="p", **{k: MAPPING[k] for k in services.PROFILE_FIELDS}
    )
    SyncRunFactory(vendor_connection=connection, state=SyncRun.State.RUNNING)
    with pytest.raises(CsvRefused, match="running now"):
        services.confirm(csv_upload, owner)
    csv_upload.refresh_from_db()
    assert csv_upload.state == CsvUpload.State.PREVIEW


def test_saving_a_mapping_under_an_existing_name_replaces_it(owner_client, connection):
    upload(owner_client, connection, MONTH_1)
    map_columns(owner_client, CsvUpload.objects.get())
    upload(owner_client, connection, "Client,Seats\nAcme Corp,3\n")
    second = CsvUpload.objects.get(state=CsvUpload.State.PREVIEW)
    map_columns(
        owner_client,
        second,
        customer_column="Client",
        service_column="",
        default_service="Cloud Backup",
        quantity_column="Seats",
    )
    profile = CsvProfile.objects.get()
    assert (profile.customer_column, profile.service_column, profile.default_service) == (
        "Client",
        "",
        "Cloud Backup",
    )
    assert AuditEvent.objects.filter(action="csv_profile.updated").count() == 1
    second.refresh_from_db()
    assert (second.profile, second.error_count) == (profile, 0)


def test_a_mapping_without_service_column_needs_a_service_name(owner_client, connection):
    upload(owner_client, connection, MONTH_1)
    response = map_columns(owner_client, CsvUpload.objects.get(), service_column="")
    assert "Name the service, or choose the column that holds it." in response.content.decode()
    assert not CsvProfile.objects.exists()


# Who may do what.


def _views(connection, csv_upload):
    return [
        ("get", reverse("integrations:csv_connection", args=[connection.pk])),
        ("get", reverse("integrations:csv_mapping", args=[csv_upload.pk])),
        ("get", reverse("integrations:csv_preview", args=[csv_upload.pk])),
        ("post", reverse("integrations:csv_confirm", args=[csv_upload.pk])),
        ("post", reverse("integrations:csv_discard", args=[csv_upload.pk])),
    ]


def test_outsiders_get_404_for_every_csv_page(client, outsider, owner, connection):
    csv_upload = services.receive(connection, owner, csv_file(MONTH_1))
    login(client, outsider)
    for method, url in _views(connection, csv_upload):
        assert getattr(client, method)(url).status_code == 404, url
    csv_upload.refresh_from_db()
    assert csv_upload.state == CsvUpload.State.PREVIEW


@pytest.mark.parametrize("role", [Role.VIEWER, Role.FINANCE])
def test_viewers_and_finance_get_403(client, member_factory, owner, connection, role):
    csv_upload = services.receive(connection, owner, csv_file(MONTH_1))
    login(client, member_factory(role))
    assert client.get(reverse("integrations:csv_new")).status_code == 403
    for method, url in _views(connection, csv_upload):
        assert getattr(client, method)(url).status_code == 403, url
    csv_upload.refresh_from_db()
    assert csv_upload.state == CsvUpload.State.PREVIEW


def test_another_kind_of_connection_is_not_a_csv_connection(owner_client, organization):
    partner = VendorConnectionFactory(organization=organization)
    url = reverse("integrations:csv_connection", args=[partner.pk])
    assert owner_client.get(url).status_code == 404
