import numpy as np
import pytest

from shared.errors import InputError
from shared.formats.mot_txt import parse_mot_bytes, parse_mot_text, read_mot, write_mot


def test_zero_byte_file_is_an_empty_result(tmp_path):
    path = tmp_path / "empty.txt"
    path.write_bytes(b"")
    assert len(read_mot(path)) == 0


def test_real_zero_byte_tracker_output(shared_dir):
    assert len(read_mot(shared_dir / "samples" / "motrv2_tracks_empty.txt")) == 0


def test_real_tracks_parse(shared_dir):
    table = read_mot(shared_dir / "samples" / "motrv2_tracks_beach.txt")
    assert len(table) == 7164
    assert table.frame[0] == 2 and table.id[0] == 0
    np.testing.assert_allclose(table.boxes[0], [775.77, 599.19, 79.95, 233.68])


@pytest.mark.parametrize("columns", [6, 7, 8, 9, 10])
def test_six_to_ten_columns_blank_lines_crlf_and_no_trailing_newline(columns):
    full = ["1", "3", "10.5", "20", "30", "40", "0.9", "2", "0.8", "-1"]
    line = ",".join(full[:columns])
    table = parse_mot_text(f"\r\n{line}\r\n\r\n{line.replace('1,3', '2,4', 1)}")
    assert len(table) == 2
    assert table.frame.tolist() == [1, 2] and table.id.tolist() == [3, 4]
    np.testing.assert_allclose(table.boxes[0], [10.5, 20, 30, 40])
    assert table.conf[0] == (0.9 if columns >= 7 else 1.0)
    assert table.cls[0] == (2 if columns >= 8 else -1)


def test_mixed_column_counts_are_accepted():
    table = parse_mot_text("1,1,0,0,5,5\n2,1,0,0,5,5,0.5,1,1\n")
    assert table.conf.tolist() == [1.0, 0.5]


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("1,2,3\n", "line 1: expected 6-10"),
        ("1,1,0,0,5,5\n1,2,3,4,5,6,7,8,9,10,11\n", "line 2: expected 6-10"),
        ("1,1,0,0,5,5\n\n2,1,x,0,5,5\n", "line 3, field 'x': not a number"),
        ("1,1,0,0,nan,5\n", "line 1, field 'w': not a finite number"),
        ("1,1,0,0,5,-5\n", "negative box size"),
        ("0,1,0,0,5,5\n", "frame must be an integer >= 1"),
    ],
)
def test_malformed_rows_name_line_and_field(text, needle):
    with pytest.raises(InputError) as info:
        parse_mot_text(text, "tracks.txt")
    assert "tracks.txt" in str(info.value)
    assert needle in str(info.value)


def test_write_then_read_round_trip(tmp_path):
    original = parse_mot_text("2,1,1.25,2.5,3,4,0.75,1,1,-1\n1,7,5,6,7,8,1,2,0.5,-1\n")
    path = tmp_path / "t.txt"
    write_mot(path, original)
    back = read_mot(path)
    assert back.frame.tolist() == [1, 2]  # sorted by frame
    np.testing.assert_allclose(back.boxes, original.boxes[[1, 0]])
    assert back.id.tolist() == [7, 1]


def test_large_file_parses_through_the_vectorised_path():
    rng = np.random.default_rng(0)
    n = 200_000
    rows = np.column_stack([rng.integers(1, 1000, n), rng.integers(1, 50, n), rng.uniform(0, 1000, (n, 4))])
    text = "\n".join(",".join(f"{v:.2f}" if i >= 2 else str(int(v)) for i, v in enumerate(r)) for r in rows)
    table = parse_mot_text(text)
    assert len(table) == n
    np.testing.assert_allclose(table.boxes, np.round(rows[:, 2:], 2))


@pytest.mark.parametrize("compiled", [True, False], ids=["C", "numpy"])
def test_fast_decimal_parser_gives_strtods_bits(compiled):
    from hypothesis import given, settings
    from hypothesis import strategies as st

    from shared.formats.decimal_text import parse_decimal_table

    number = st.builds(
        lambda sign, whole, frac: f"{sign}{whole}{'.' + frac if frac is not None else ''}",
        st.sampled_from(["", "-"]),
        st.integers(0, 10**8).map(str),  # with 6 decimals: at most 15 digits, the fast path's limit
        st.one_of(st.none(), st.text("0123456789", min_size=0, max_size=6)),
    )

    @settings(max_examples=300, deadline=None)
    @given(st.lists(st.lists(number, min_size=6, max_size=6), min_size=1, max_size=20))
    def check(rows):
        text = "\n".join(",".join(r) for r in rows) + "\n"
        fast = parse_decimal_table(text.encode(), 6, compiled=compiled)
        expected = np.array([[float(v) for v in r] for r in rows])
        assert fast is not None
        assert (fast.view(np.int64) == expected.view(np.int64)).all()

    check()


def test_compiled_parser_is_built():
    from shared.formats import decimal_text

    assert decimal_text._decimal is not None, "shared/formats/_decimal.c did not build (C compiler missing?)"


@pytest.mark.parametrize("compiled", [True, False], ids=["C", "numpy"])
@pytest.mark.parametrize(
    "text",
    [
        b"1,1,0,0,1e3,5\n", b"1,1,0,0,nan,5\n", b"1,1,0,0,5,5\n\n2,1,0,0,5,5\n", b"1, 1,0,0,5,5\n",
        b"1,1,0,0,5\n", b"1,1,0,0,5,5,7\n", b"1,1,0,0,5,5\r", b"1,1,0,0,5.5.5,5\n", b"1,1,0,-,5,5\n",
        b"1,1,0,0,1234567890123456,5\n", b"1,1,0,0,5,5,\n", b"1,1,0,0,5,--5\n",
    ],
)  # fmt: skip
def test_unusual_text_falls_back_to_the_general_parser(text, compiled):
    from shared.formats.decimal_text import parse_decimal_table

    assert parse_decimal_table(text, 6, compiled=compiled) is None


def test_compiled_and_numpy_parsers_agree_on_line_endings():
    from shared.formats.decimal_text import parse_decimal_table

    for text in (b"1,2,3.5,-0.25,.5,7.\r\n2,3,4,5,6,7", b"1,2,3,4,5,6\n2,3,4,5,6,-0\n"):
        fast, slow = parse_decimal_table(text, 6), parse_decimal_table(text, 6, compiled=False)
        assert fast.shape == (2, 6) and (fast.view(np.int64) == slow.view(np.int64)).all()
        fill = [0, 0, 0, 0, 0, 0, 1.0, -1.0, -1.0]  # rows 9 wide, the missing columns filled
        fast, slow = parse_decimal_table(text, 6, fill=fill), parse_decimal_table(text, 6, compiled=False, fill=fill)
        assert fast.shape == (2, 9) and (fast.view(np.int64) == slow.view(np.int64)).all()
        assert fast[:, 6:].tolist() == [[1.0, -1.0, -1.0]] * 2 and fast[:, :6].tolist() == slow[:, :6].tolist()


def test_fast_path_errors_still_name_the_line(tmp_path):
    path = tmp_path / "t.txt"
    path.write_bytes(b"1,1,0,0,5,5\r\n2,1,0,0,5,5\r\n0,1,0,0,5,5\r\n")
    with pytest.raises(InputError, match=r"line 3, field 'frame'"):
        read_mot(path)
    path.write_bytes(b"1,1,0,0,5,5\n1,2,0,0,-5,5\n")
    with pytest.raises(InputError, match=r"line 2, field 'w/h'"):
        read_mot(path)


def test_large_file_through_the_fast_path_in_blocks(tmp_path):
    from shared.formats import decimal_text

    rng = np.random.default_rng(1)
    n = 120_000  # ~5 MB: several blocks
    rows = np.column_stack([rng.integers(1, 5000, n), rng.integers(1, 99, n), rng.uniform(-50, 2000, (n, 4))])
    lines = [f"{int(r[0])},{int(r[1])},{r[2]:.2f},{r[3]:.3f},{abs(r[4]):.2f},{abs(r[5]):.2f},1,-1,-1,-1" for r in rows]
    path = tmp_path / "big.txt"
    path.write_text("\n".join(lines))
    assert path.stat().st_size > 2 * decimal_text.BLOCK_BYTES
    table = read_mot(path)
    expected = np.fromstring(",".join(lines), sep=",").reshape(n, 10)
    assert len(table) == n
    assert (table.boxes.view(np.int64) == expected[:, 2:6].view(np.int64)).all()
    assert (table.frame == expected[:, 0]).all() and (table.id == expected[:, 1]).all()


def test_ids_written_as_floats_are_read_as_trackeval_reads_them():
    table = parse_mot_bytes(b"1,1.0,0,0,5,5\n2,4.000,0,0,5,5\n3,1.000000e+00,0,0,5,5\n", "pred.txt")
    assert table.id.tolist() == [1, 4, 1]
    with pytest.warns(UserWarning, match=r"pred.txt: 2 non-integral id\(s\).*lines 2, 3"):
        table = parse_mot_bytes(b"1,1,0,0,5,5\n1,2.5,0,0,5,5\n2,-3.7,0,0,5,5\n", "pred.txt")
    assert table.id.tolist() == [1, 2, -3]  # numpy's astype(int), as TrackEval
