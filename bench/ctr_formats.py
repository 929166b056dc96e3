"""Format adapters for public CTR data sets: each turns lines of its format into the categorical / numeric field
form CtrNet reads (a bucket per categorical field, bucket 0 = empty or unknown; raw numbers; a 0/1 label).

- libFM (Frappe): ``label idx:1 idx:1 ...``, one active one-hot feature per field, global indices laid out field
  after field (the field sizes say where each field starts).
- Criteo: 13 integer columns I1-I13 then 26 hashed categorical C1-C26, tab-separated without a header (the
  Kaggle train.txt) or comma-separated with a ``label,I1,...`` header (the FuxiCTR sample).
- Avazu: CSV with a header, label ``click``; ``id`` dropped; ``hour`` (YYMMDDHH) kept as its hour of day.
Pure functions: no files, no torch.
"""

from __future__ import annotations

import csv
import math
import zlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

# Frappe field sizes in libFM index order (SOURCE.md of frappe_x1_partial; indices 0-5381)
FRAPPE_FIELDS = {
    "user": 957,
    "item": 4082,
    "daytime": 7,
    "weekday": 7,
    "isweekend": 2,
    "homework": 3,
    "cost": 2,
    "weather": 9,
    "country": 80,
    "city": 233,
}
HASH_BUCKETS = 1024  # per hashed field: plenty for the tiny Criteo / Avazu samples
CRITEO_NUMERIC = tuple(f"I{i}" for i in range(1, 14))
CRITEO_CATEGORICAL = tuple(f"C{i}" for i in range(1, 27))


@dataclass
class TabularRows:
    cat_fields: tuple[str, ...]
    cat_buckets: tuple[int, ...]  # vocabulary size of each categorical field, bucket 0 included
    num_fields: tuple[str, ...]
    cat: np.ndarray  # int64 [n, len(cat_fields)]
    num: np.ndarray  # float32 [n, len(num_fields)]
    labels: np.ndarray  # float32 [n], 1 = clicked


def hashed_bucket(field: str, value: str, buckets: int = HASH_BUCKETS) -> int:
    """Stable bucket in 1..buckets-1 of a categorical value; 0 for an empty one."""
    if value == "":
        return 0
    return 1 + zlib.crc32(f"{field}={value}".encode()) % (buckets - 1)


def parse_libfm(lines: Iterable[str], field_sizes: dict[str, int] = FRAPPE_FIELDS) -> TabularRows:
    """Each active global index becomes its field's bucket (index - field start + 1); labels 1 / -1 become 1 / 0."""
    sizes = np.array(list(field_sizes.values()))
    starts = np.cumsum(sizes) - sizes
    cat, labels = [], []
    for line in lines:
        parts = line.split()
        if not parts:
            continue
        row = [0] * len(sizes)
        for item in parts[1:]:
            index = int(item.split(":")[0])
            f = int(np.searchsorted(starts, index, side="right")) - 1
            if index >= starts[f] + sizes[f]:
                raise ValueError(f"feature index {index} is past the last field")
            row[f] = index - int(starts[f]) + 1
        cat.append(row)
        labels.append(1.0 if float(parts[0]) > 0 else 0.0)
    return _rows(tuple(field_sizes), tuple(int(s) + 1 for s in sizes), (), cat, [[] for _ in cat], labels)


def _log_count(value: str) -> float:
    """Criteo's integer counts are heavy-tailed: log1p of the non-negative part, 0 when missing."""
    return math.log1p(max(float(value), 0.0)) if value != "" else 0.0


def parse_criteo(lines: Iterable[str]) -> TabularRows:
    cat, num, labels = [], [], []
    for line in lines:
        line = line.rstrip("\n")
        if not line or line.startswith("label"):
            continue  # empty or the header line
        values = line.split("\t") if "\t" in line else line.split(",")
        values += [""] * (40 - len(values))  # trailing empty columns may be cut off
        labels.append(float(values[0]))
        num.append([_log_count(v) for v in values[1:14]])
        cat.append([hashed_bucket(name, v) for name, v in zip(CRITEO_CATEGORICAL, values[14:40])])
    buckets = (HASH_BUCKETS,) * len(CRITEO_CATEGORICAL)
    return _rows(CRITEO_CATEGORICAL, buckets, CRITEO_NUMERIC, cat, num, labels)


def parse_avazu(lines: Iterable[str]) -> TabularRows:
    reader = csv.DictReader(lines)
    fields = tuple(f for f in reader.fieldnames or () if f not in ("id", "click"))
    cat, labels = [], []
    for record in reader:
        values = {**record, "hour": record["hour"][-2:]}  # YYMMDDHH -> hour of day
        cat.append([hashed_bucket(name, values[name] or "") for name in fields])
        labels.append(float(record["click"]))
    return _rows(fields, (HASH_BUCKETS,) * len(fields), (), cat, [[] for _ in cat], labels)


def _rows(
    cat_fields: tuple[str, ...],
    buckets: tuple[int, ...],
    num_fields: tuple[str, ...],
    cat: Sequence[Sequence[int]],
    num: Sequence[Sequence[float]],
    labels: Sequence[float],
) -> TabularRows:
    n = len(labels)
    return TabularRows(
        cat_fields,
        buckets,
        num_fields,
        np.asarray(cat, dtype=np.int64).reshape(n, len(cat_fields)),
        np.asarray(num, dtype=np.float32).reshape(n, len(num_fields)),
        np.asarray(labels, dtype=np.float32),
    )
