"""CSV usage uploads: a monthly file of customer, service and quantity, for vendors without an
API (parsed and previewed before anything is stored)."""

from reconcile.core.providers import Provider

PROVIDER = Provider(
    kind="csv_upload",
    label="CSV usage upload",
    adapter="integrations.providers.csv_upload.adapter.CsvUsageAdapter",
    form="integrations.providers.csv_upload.forms.ConnectionForm",
    budget="no requests: files are uploaded",
    has_credential=False,
)
