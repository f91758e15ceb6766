"""Numbers as finance reads them: 48 not 48.00, +2 and −2, $1,234.50."""

from decimal import Decimal

from django import template

register = template.Library()
SYMBOLS = {"USD": "$", "EUR": "€", "GBP": "£", "CAD": "CA$", "AUD": "A$", "NZD": "NZ$"}
MINUS = "\u2212"


@register.filter
def qty(value) -> str:
    """A quantity without trailing zeros; "–" for none."""
    if value is None or value == "":
        return "–"
    value = Decimal(value)
    text = f"{value:,.2f}".rstrip("0").rstrip(".") if value % 1 else f"{value:,.0f}"
    return text.replace("-", MINUS)


@register.filter
def signed(value) -> str:
    """A difference with its sign: +2, −2, 0."""
    if value is None:
        return "–"
    text = qty(abs(Decimal(value)))
    return f"+{text}" if value > 0 else f"{MINUS}{text}" if value < 0 else "0"


@register.filter
def money(value, currency="USD") -> str:
    """An amount in the organization's currency, signed when asked with `money_signed`."""
    if value is None:
        return "–"
    value = Decimal(value)
    symbol = SYMBOLS.get(currency)
    amount = f"{abs(value):,.2f}"
    text = f"{symbol}{amount}" if symbol else f"{amount} {currency}"
    return f"{MINUS}{text}" if value < 0 else text


@register.filter
def money_signed(value, currency="USD") -> str:
    if value is None:
        return "–"
    text = money(value, currency)
    return f"+{text}" if Decimal(value) > 0 else text
