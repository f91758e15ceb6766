"""Property-based tests (hypothesis): the matcher's normalisation and every quantity parser
take any input without crashing, and agree with themselves."""

import csv
import io
from decimal import Decimal

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from integrations.providers.csv_upload.parser import Mapping, decode, parse, quantity_error
from reconcile.mapping.matching import auto_key, name_keys, score_pair
from reconcile.review.forms import AdjustForm

names = st.text(min_size=0, max_size=80)
latin_names = st.text(
    alphabet=st.characters(codec="latin-1", exclude_categories=("Cc", "Cs")), max_size=60
)
FAST = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@FAST
@given(names)
def test_any_name_has_keys_and_scores_itself_highest(name):
    keys = name_keys(name)
    assert all(isinstance(key, str) for key in keys)
    if keys.full:
        assert score_pair(keys, keys) >= 99


@FAST
@given(latin_names, st.sampled_from([" ", "  ", "\t", " \u00a0"]))
def test_spacing_and_case_never_change_the_automatic_key(name, space):
    spaced = f"{space}{space.join(name.split())}{space}"
    assert auto_key(spaced) == auto_key(name)
    assert auto_key(name.upper().lower()) == auto_key(name.lower())


@FAST
@given(names, names)
def test_scores_are_symmetric_and_bounded(a, b):
    ab, ba = score_pair(name_keys(a), name_keys(b)), score_pair(name_keys(b), name_keys(a))
    assert 0 <= ab <= 100 and abs(ab - ba) < 1e-6


@FAST
@given(st.integers(min_value=0, max_value=1_000_000))
def test_every_whole_quantity_up_to_a_million_is_accepted(quantity):
    form = AdjustForm({"quantity": str(quantity), "effective_date": "2099-01-01"})
    assert form.is_valid(), form.errors
    assert form.cleaned_data["quantity"] == Decimal(quantity)


@FAST
@given(st.text(max_size=30))
def test_any_typed_quantity_is_a_number_or_a_message(text):
    form = AdjustForm({"quantity": text, "effective_date": "2099-01-01"})
    if form.is_valid():
        quantity = form.cleaned_data["quantity"]
        assert 0 <= quantity <= 1_000_000
    else:
        assert form.errors["quantity"]


@FAST
@given(st.text(max_size=20))
def test_csv_quantity_messages_never_crash(value):
    assert quantity_error(value)


@FAST
@given(
    st.lists(
        st.tuples(
            st.text(
                alphabet=st.characters(exclude_categories=("Cc", "Cs", "Zl", "Zp")),
                min_size=1,
                max_size=20,
            ),
            st.integers(min_value=0, max_value=10**6),
        ),
        max_size=30,
    )
)
def test_a_written_csv_reads_back_as_written(rows):
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["Customer", "Seats"])
    writer.writerows(rows)
    text, _ = decode(buffer.getvalue().encode("utf-8"))
    result = parse(text, Mapping(customer="Customer", quantity="Seats", default_service="SAT"))
    # Every row is either read exactly or reported (blank names, duplicates, odd characters).
    reported = {error.row for error in result.errors}
    for number, (customer, seats) in enumerate(rows, start=2):
        read = [row for row in result.rows if row.number == number]
        if read:
            assert read[0].quantity == seats
            assert " ".join(read[0].customer.split()) == " ".join(customer.split())
        else:
            assert number in reported or not customer.strip()


@FAST
@given(st.binary(max_size=2000))
def test_any_bytes_are_decoded_or_refused_with_a_reason(data):
    from integrations.providers.csv_upload.parser import CsvRefused

    try:
        text, encoding = decode(data)
    except CsvRefused as refusal:
        assert str(refusal)
    else:
        assert isinstance(text, str) and encoding
