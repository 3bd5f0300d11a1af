import json

import numpy as np
import pytest

from shared.errors import InputError
from shared.formats.det_db import det_db_key, parse_key, read_det_db, to_json_value, write_det_db


def test_real_det_db_reads_and_writes_back_the_same_json_value(shared_dir, tmp_path):
    source = shared_dir / "samples" / "det_db_beach_volleyball.json"
    table = read_det_db(source)
    assert len(table) == 956
    assert table["volleyball/test/test1/img1/000001"].shape == (23, 5)
    out = tmp_path / "det_db.json"
    write_det_db(out, table)
    assert json.loads(out.read_text()) == json.loads(source.read_text())


def test_keys_follow_motrv2_rule():
    assert det_db_key("seq", 7) == "seq/img1/000007"
    assert parse_key("volleyball/test/test1/img1/000956") == ("volleyball/test/test1", 956)
    assert parse_key("seq/000001") is None


def test_line_format_is_motrv2s(tmp_path):
    out = tmp_path / "db.json"
    write_det_db(out, {"s/img1/000001": np.array([[1.234, 2, 3.5, 4, 0.5]]), "s/img1/000002": np.zeros((0, 5))})
    assert json.loads(out.read_text()) == {
        "s/img1/000001": ["1.23,2.00,3.50,4.00,0.500000\n"],
        "s/img1/000002": [],
    }


@pytest.mark.parametrize(
    ("content", "needle"),
    [
        ("", "empty file"),
        ("[1, 2]", "expected a JSON object"),
        ('{"a/img1/000001": ["1,2,3,4"]}', "entry 0: expected 5"),
        ('{"a/img1/000001": ["1,2,3,4,0.5\\n", "1,2,x,4,0.5"]}', "entry 1, field 'w'"),
        ('{"a/img1/000001": ["1,2,NaN,4,0.5"]}', "not a finite number"),
        ('{"a/img1/000001": ["1,2,-3,4,0.5"]}', "negative box size"),
        ('{"a/img1/000001": "1,2,3,4,0.5"}', "expected a list of lines"),
        ('{"a": [}', "invalid JSON"),
    ],
)
def test_malformed_det_db_names_file_key_entry_and_field(tmp_path, content, needle):
    path = tmp_path / "bad.json"
    path.write_text(content)
    with pytest.raises(InputError) as info:
        read_det_db(path)
    assert str(path) in str(info.value)
    assert needle in str(info.value)


def test_round_trip_values():
    table = {"x/img1/000001": np.array([[0.5, 1.25, 10.0, 20.0, 0.123456]])}
    assert to_json_value(table) == {"x/img1/000001": ["0.50,1.25,10.00,20.00,0.123456\n"]}
