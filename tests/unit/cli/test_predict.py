"""`conveyor predict` reads rows as people write them, and says what is wrong with a file."""

from __future__ import annotations

import pytest

from conveyor.cli.serving import read_rows
from conveyor.errors import ConveyorError

ROW = {"sepal_length_cm": 5.1, "sepal_width_cm": 3.5}


def test_a_list_of_rows_or_instances() -> None:
    assert read_rows('[{"sepal_length_cm": 5.1, "sepal_width_cm": 3.5}]', "rows.json") == [ROW]
    text = '{"instances": [{"sepal_length_cm": 5.1, "sepal_width_cm": 3.5}]}'
    assert read_rows(text, "rows.json") == [ROW]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[{", "rows.json is not JSON"),
        ('{"rows": []}', "must hold a list of rows"),
        ("[1, 2]", "must hold a list of rows"),
        ("[]", "rows.json holds no rows"),
    ],
)
def test_a_file_that_is_not_rows_says_so(text: str, message: str) -> None:
    with pytest.raises(ConveyorError, match=message):
        read_rows(text, "rows.json")
