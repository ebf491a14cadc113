"""Integer query parameters beyond what a database column holds are refused in every spelling a route would parse."""

from __future__ import annotations

import pytest

from tuneforge.api.limits import query_problem

IDS = frozenset({"ownerId"})


@pytest.mark.parametrize("value", ["2147483648", "2_147_483_648", "%202147483648", "2147483648.0", "1e30",
                                   "+2147483648", "9" * 5000])
def test_out_of_range_ids_are_refused_however_written(value):
    assert query_problem(f"ownerId={value}".encode(), IDS) == ("ownerId", "is out of range (at most 2147483647)")


@pytest.mark.parametrize("value", ["5", "2147483647", "abc", "", "nan"])
def test_other_values_are_left_to_the_route(value):
    assert query_problem(f"ownerId={value}".encode(), IDS) is None
