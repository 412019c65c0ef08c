import pytest

from cases.phones import InvalidPhone, mask_phone, normalise_phone, try_normalise_phone


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("13800138000", "13800138000"),
        ("+86 138-0013-8000", "13800138000"),
        ("0086 13800138000", "13800138000"),
        ("0794-8123456", "07948123456"),
    ],
)
def test_normalise(raw, expected):
    assert normalise_phone(raw) == expected


def test_short_service_numbers_only_where_allowed():
    assert normalise_phone("12345", allow_short=True) == "12345"
    with pytest.raises(InvalidPhone):
        normalise_phone("12345")


@pytest.mark.parametrize(
    "raw", ["", "   ", "abc", "1380013800０", "1" * 21, "23800138000", "138001380001", "１２３"]
)
def test_invalid(raw):
    with pytest.raises(InvalidPhone):
        normalise_phone(raw)


@pytest.mark.parametrize("raw", [None, "", "anonymous", 'x"\n' * 30, "Unknown"])
def test_caller_ids_that_are_not_numbers(raw):
    assert try_normalise_phone(raw) is None


def test_mask():
    assert mask_phone("13800138000") == "138****8000"
    assert mask_phone("12345") == "*****"
    assert mask_phone(None) == ""
