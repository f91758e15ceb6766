"""The CSV usage adapter: the connection's confirmed file, read as pages of accounts.

A CSV connection has no API: its "vendor" is the last file a person uploaded and confirmed
(a CsvUpload in state imported). `for_connection()` loads that file and its mapping on the
caller's thread; the pages are then built from memory (the sync fetches pages on a background
thread that must not touch the database). Each customer is one account (external id from its
normalised name, so next month's file updates the same account), each service one vendor
service (code: the slug of its name), and each row one usage point: active users = the
quantity, seats unknown.
"""

from collections.abc import Iterator

from integrations.adapters import (
    AccountPage,
    AccountRecord,
    ConnectionCheck,
    ServiceUsage,
    VendorAdapter,
)
from integrations.providers.csv_upload import parser
from integrations.providers.csv_upload.parser import Mapping
from reconcile.core.errors import BadAnswer

PAGE_SIZE = 1000


class CsvUsageAdapter(VendorAdapter):
    kind = "csv_upload"

    def __init__(
        self,
        *,
        base_url: str = "",
        credential: str = "",
        api_schema: str = "",
        content: str | None = None,
        mapping: Mapping | None = None,
        file_name: str = "",
        per: int = PAGE_SIZE,
    ):
        super().__init__(base_url=base_url, credential=credential, api_schema=api_schema)
        self.content = content
        self.mapping = mapping
        self.file_name = file_name
        self.per = per

    @classmethod
    def for_connection(cls, connection) -> "CsvUsageAdapter":
        """Built by integrations.registry: the latest confirmed file of the connection."""
        upload = (
            connection.csv_uploads.filter(state="imported")
            .exclude(content="")
            .select_related("profile")
            .order_by("-imported_at", "-pk")
            .first()
        )
        if upload is None:
            return cls()
        return cls(
            content=upload.content,
            mapping=Mapping.from_profile(upload.profile) if upload.profile else None,
            file_name=upload.file_name,
        )

    def test(self) -> ConnectionCheck:
        if self.content is None:
            message = (
                "No API to call: usage comes from uploaded CSV files, and none is confirmed yet."
            )
        else:
            message = f"No API to call: usage comes from uploaded CSV files ({self.file_name})."
        return ConnectionCheck(message=message, latency_ms=0)

    def iter_account_pages(self) -> Iterator[AccountPage]:
        if self.content is None:
            raise BadAnswer(
                "No CSV file is confirmed for this connection yet: upload one and confirm its "
                "preview."
            )
        if self.mapping is None:
            raise BadAnswer(
                f"The column mapping of {self.file_name} was deleted: upload the file again."
            )
        result = parser.parse(self.content, self.mapping)
        if not result.ok:
            first = result.errors[0] if result.errors else None
            where = f"row {first.row}: " if first and first.row else ""
            raise BadAnswer(
                f"{self.file_name} no longer reads without errors with its mapping "
                f"({len(result.errors)}; {where}{first.message if first else 'no rows'}). "
                "Upload it again and check the preview."
            )
        accounts = records(result)
        pages = max((len(accounts) + self.per - 1) // self.per, 1)
        for number in range(1, pages + 1):
            yield AccountPage(
                accounts=accounts[(number - 1) * self.per : number * self.per],
                number=number,
                total_pages=pages,
                total_count=len(accounts),
            )


def records(result: parser.ParseResult) -> list[AccountRecord]:
    """One AccountRecord per customer, its rows as usage, in the order of the file.

    `raw` holds the quantities by service code, so an account is "updated" (and gets new usage
    points) exactly when one of its quantities, or its set of services, changed. The account's
    own active users are the quantity when it has one service; with several they are left
    unknown, because quantities of different services need not count the same unit.
    """
    accounts: dict[str, AccountRecord] = {}
    for row in result.rows:
        record = accounts.get(row.customer_id)
        if record is None:
            record = accounts[row.customer_id] = AccountRecord(
                external_id=row.customer_id, name=row.customer, raw={"quantities": {}}
            )
        record.usage.append(ServiceUsage(row.service_code, row.service, row.quantity, None))
        record.raw["quantities"][row.service_code] = row.quantity
    for record in accounts.values():
        record.active_users = record.usage[0].active_users if len(record.usage) == 1 else None
    return list(accounts.values())
