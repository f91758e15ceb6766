"""KnowBe4 Reporting API (REST): one customer account per key, users counted one by one."""

from reconcile.core.providers import Provider

PROVIDER = Provider(
    kind="knowbe4_reporting",
    label="KnowBe4 Reporting API",
    adapter="integrations.providers.knowbe4_reporting.adapter.ReportingAdapter",
    form="integrations.providers.knowbe4_reporting.forms.ReportingConnectForm",
    rotate_form="integrations.providers.knowbe4_reporting.forms.ReportingRotateForm",
    credential_noun="key",
    budget="4 a second and 50 a minute, KnowBe4's documented Reporting API limits",
)
