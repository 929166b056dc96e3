"""The public CTR format adapters parse a few lines of each format into the expected fields (inline strings: the
shared data files are not needed)."""

from __future__ import annotations

import numpy as np
import pytest

from bench.ctr_formats import (
    CRITEO_CATEGORICAL,
    FRAPPE_FIELDS,
    HASH_BUCKETS,
    hashed_bucket,
    parse_avazu,
    parse_criteo,
    parse_libfm,
)


def test_libfm_rows_become_one_bucket_per_frappe_field() -> None:
    lines = [
        "-1 204:1 4798:1 5041:1 5046:1 5053:1 5055:1 5058:1 5060:1 5073:1 5183:1\n",
        "1 0:1 957:1 5039:1 5052:1 5054:1 5057:1 5059:1 5068:1 5148:1 5381:1\n",
    ]
    rows = parse_libfm(lines)
    assert rows.cat_fields == tuple(FRAPPE_FIELDS)
    assert rows.cat_buckets == tuple(size + 1 for size in FRAPPE_FIELDS.values())
    # index - field start + 1: user starts at 0, item at 957, daytime at 5039, ..., city at 5149
    assert rows.cat[0].tolist() == [205, 4798 - 957 + 1, 3, 1, 1, 1, 1, 1, 5, 35]
    # the first and last index of every field
    assert rows.cat[1].tolist() == [1, 1, 1, 7, 2, 3, 2, 9, 80, 233]
    assert rows.labels.tolist() == [0.0, 1.0]
    assert rows.num.shape == (2, 0)


def test_libfm_rejects_an_index_past_the_last_field() -> None:
    with pytest.raises(ValueError, match="past the last field"):
        parse_libfm(["1 5382:1\n"])


CRITEO_TSV = "1\t1\t\t5\t-3\t" + "\t".join(["0"] * 9) + "\t68fd1e64\t\t" + "\t".join(["a"] * 24) + "\n"


def test_criteo_tab_separated_row() -> None:
    rows = parse_criteo([CRITEO_TSV])
    assert rows.labels.tolist() == [1.0]
    # I1=1 -> log1p(1); I2 missing -> 0; I3=5 -> log1p(5); I4=-3 -> clipped to 0
    assert np.allclose(rows.num[0, :4], [np.log1p(1), 0.0, np.log1p(5), 0.0])
    assert rows.cat.shape == (1, 26) and rows.cat_buckets == (HASH_BUCKETS,) * 26
    assert rows.cat[0, 0] == hashed_bucket("C1", "68fd1e64")
    assert rows.cat[0, 1] == 0  # empty C2


def test_criteo_csv_with_header_and_cut_trailing_columns() -> None:
    header = "label," + ",".join(f"I{i}" for i in range(1, 14)) + "," + ",".join(CRITEO_CATEGORICAL) + "\n"
    line = "0,,3,260.0" + "," * 11 + "05db9164,08d6d899\n"  # I4..I13 empty, only C1 and C2 given
    rows = parse_criteo([header, line])
    assert rows.labels.tolist() == [0.0]
    assert np.allclose(rows.num[0, :3], [0.0, np.log1p(3), np.log1p(260)])
    assert rows.cat[0, :2].tolist() == [hashed_bucket("C1", "05db9164"), hashed_bucket("C2", "08d6d899")]
    assert rows.cat[0, 2:].tolist() == [0] * 24


def test_avazu_drops_the_id_and_keeps_the_hour_of_day() -> None:
    lines = [
        "id,click,hour,C1,banner_pos,site_id\n",
        "1000009418151094273,0,14102100,1005,0,1fbe01fe\n",
        "10000169349117863715,1,14102113,1005,1,\n",
    ]
    rows = parse_avazu(lines)
    assert rows.cat_fields == ("hour", "C1", "banner_pos", "site_id")
    assert rows.labels.tolist() == [0.0, 1.0]
    assert rows.cat[0].tolist() == [
        hashed_bucket("hour", "00"),
        hashed_bucket("C1", "1005"),
        hashed_bucket("banner_pos", "0"),
        hashed_bucket("site_id", "1fbe01fe"),
    ]
    assert rows.cat[1, 0] == hashed_bucket("hour", "13") and rows.cat[1, 3] == 0


def test_hashed_buckets_stay_in_range_and_keep_zero_for_empty() -> None:
    values = [hashed_bucket("f", str(v), 8) for v in range(200)]
    assert min(values) >= 1 and max(values) <= 7 and len(set(values)) == 7
    assert hashed_bucket("f", "", 8) == 0
