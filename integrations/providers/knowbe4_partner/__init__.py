"""KnowBe4 Partner API (GraphQL): every customer account of an MSP partner."""

from reconcile.core.providers import Provider

PROVIDER = Provider(
    kind="knowbe4_partner",
    label="KnowBe4 Partner API",
    adapter="integrations.providers.knowbe4_partner.adapter.PartnerAdapter",
    form="integrations.providers.knowbe4_partner.forms.ConnectForm",
    rotate_form="integrations.providers.knowbe4_partner.forms.RotateForm",
    credential_noun="key",
)
