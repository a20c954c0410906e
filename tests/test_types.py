import math

import pytest

from civicmap.errors import InputError
from civicmap.types import BBox, RowError


def test_bbox_parse_accepts_four_numbers_in_order():
    assert BBox.parse(["39.2", -6.83, 39.25, -6.8]) == BBox(39.2, -6.83, 39.25, -6.8)


@pytest.mark.parametrize(
    ("values", "needle"),
    [
        ([1, 2, 3], "has 3 numbers"),
        ([1, 2, 3, 4, 5], "has 5 numbers"),
        (["a", 0, 1, 1], "not four numbers"),
        ([10, 0, 5, 1], "west 10.0 must be less than east 5.0"),
        ([0, 5, 1, 1], "south 5.0 must be less than north 1.0"),
        ([0, 0, 200, 1], "lat/lon swapped"),
        ([0, 0, math.inf, 1], "finite"),
    ],
)
def test_bbox_parse_rejects_bad_values_with_reason(values, needle):
    with pytest.raises(InputError, match=needle.replace("/", ".").replace("(", ".")):
        BBox.parse(values)


def test_bbox_parse_projected_allows_metres():
    assert BBox.parse([500000, 9200000, 501000, 9201000], geographic=False).east == 501000


def test_row_error_reads_like_a_sentence():
    text = str(RowError(row=7, field="storeys", value="two", problem="not an integer"))
    assert text == "row 7, field 'storeys': not an integer (value 'two')"
