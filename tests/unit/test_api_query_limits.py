"""Integer query parameters are digits, as the OpenAPI document says, and within what a database column holds: every
other spelling of a number a route's lax parsing would take ("2.0", " 2", "2_000", "1e30") is refused naming the
parameter; text that is no number is left to the route (the same name may be a string id on another route)."""

from __future__ import annotations

import pytest

from tuneforge.api.limits import query_problem

IDS = frozenset({"ownerId"})


@pytest.mark.parametrize("value", ["2147483648", "%2B2147483648", "-2147483648", "9" * 5000])
def test_out_of_range_ids_are_refused(value):
    assert query_problem(f"ownerId={value}".encode(), IDS) == ("ownerId", "is out of range (at most 2147483647)")


@pytest.mark.parametrize("value", ["2_147_483_648", "%202147483648", "2147483648.0", "0.0", "1e30"])
def test_numbers_not_written_in_digits_are_refused(value):
    field, message = query_problem(f"ownerId={value}".encode(), IDS) or ("", "")
    assert field == "ownerId" and message.startswith("must be a whole number written in digits")


@pytest.mark.parametrize("value", ["5", "2147483647", "-3", "abc", "", "nan", "export-20261205-1"])
def test_whole_numbers_in_range_and_text_are_left_to_the_route(value):
    assert query_problem(f"ownerId={value}".encode(), IDS) is None


def test_the_consoles_pages_read_their_own_numbers_but_not_beyond_a_column() -> None:
    assert query_problem(b"step=1.5", frozenset({"step"}), digits_only=False) is None
    assert query_problem(b"ownerId=2147483648", IDS, digits_only=False) == ("ownerId", "is out of range (at most "
                                                                                      "2147483647)")
