"""Go duration strings, as HEALTHCHECK flags take them."""
import pytest

from executor.dockerfile.durations import format_duration, parse_duration

S = 1_000_000_000


@pytest.mark.parametrize(("text", "ns"), [
    ("0", 0), ("5s", 5 * S), ("1m30s", 90 * S), ("1.5h", 5400 * S), ("300ms", 300_000_000), ("-2s", -2 * S),
    ("+3m", 180 * S), (".5s", S // 2), ("5.s", 5 * S), ("2\u00b5s", 2000), ("2us", 2000), ("7ns", 7),
    ("1h2m3s4ms5us6ns", 3_723_004_005_006), ("0.000000001s", 1),
])
def test_valid(text, ns):
    assert parse_duration(text) == ns


@pytest.mark.parametrize(("text", "message"), [
    ("", "invalid duration"), ("5", "missing unit"), ("s", "invalid duration"), ("1x", 'unknown unit "x"'),
    ("--5s", "invalid duration"), ("5s5", "missing unit"), (".s", "invalid duration"), ("1.2.3s", "missing unit"),
    ("9999999999h", "invalid duration"), ("1d", 'unknown unit "d"'),
])
def test_invalid(text, message):
    with pytest.raises(ValueError, match=message):
        parse_duration(text)


def test_format():
    assert format_duration(90 * S) == "1m30s"
    assert format_duration(0) == "0s"
    assert format_duration(S // 2) == "0.5s"
