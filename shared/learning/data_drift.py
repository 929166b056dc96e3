"""How far the CTR model's key inputs moved between two training windows: the population stability index (PSI) of
each feature and, for numbers, the two-sample Kolmogorov-Smirnov statistic, previous window -> latest window.

A retrain learns the latest window; when what it sees there shifted (prices, slot positions, how active users are,
which categories get shown, how often ads are clicked), its offline metrics on older data say less about tomorrow.
Features are read from the events the cleaning job left (quarantined rows are not training data):

- ``price``: the advertised product's price, per impression (numeric)
- ``position``: the ad's slot, per impression (numeric)
- ``user_activity``: events per active user in the window (numeric, one value per user)
- ``click_rate``: the shares of impressions clicked and not clicked (categorical; per ad it would be mostly
  sampling noise at a few dozen impressions an ad)
- ``category_mix``, ``placement_mix``: shares of impressions per ad category / placement (categorical)

PSI rule of thumb: below 0.1 stable, 0.1-0.25 moderate, above 0.25 a shift worth a look.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import numpy as np
from sqlalchemy import Engine, text

BINS = 10
EPSILON = 1e-4  # an empty bin's share, so the log stays finite
PSI_MODERATE, PSI_SHIFT = 0.1, 0.25
MIN_ROWS = 100  # in each window, for a verdict

_NUMERIC_SQL = {
    "price": """select p.price_micros / 1e6 from events e join ads a on a.ad_id = e.ad_id
                join products p on p.product_id = a.product_id
                where e.type = 'impression' and e.occurred_at >= :start and e.occurred_at < :end""",
    "position": """select coalesce((e.properties->>'position')::float, 1) from events e
                   where e.type = 'impression' and e.occurred_at >= :start and e.occurred_at < :end""",
    "user_activity": """select count(*)::float from events e
                        where e.user_id is not null and e.occurred_at >= :start and e.occurred_at < :end
                        group by e.user_id""",
}
_CATEGORICAL_SQL = {
    "category_mix": """select coalesce(a.category, ''), count(*) from events e join ads a on a.ad_id = e.ad_id
                       where e.type = 'impression' and e.occurred_at >= :start and e.occurred_at < :end
                       group by 1""",
    "click_rate": """select case when exists (select 1 from events c where c.type = 'click'
                                                 and c.impression_id = e.impression_id)
                             then 'clicked' else 'not clicked' end, count(*)
                      from events e
                      where e.type = 'impression' and e.occurred_at >= :start and e.occurred_at < :end
                      group by 1""",
    "placement_mix": """select coalesce(e.placement_id, ''), count(*) from events e
                        where e.type = 'impression' and e.occurred_at >= :start and e.occurred_at < :end
                        group by 1""",
}


@dataclass(frozen=True)
class Window:
    start: datetime
    end: datetime  # exclusive


@dataclass(frozen=True)
class FeatureShift:
    feature: str
    kind: str  # numeric | categorical
    psi: float
    ks: float | None  # numeric only
    previous: float | dict[str, float]  # mean, or the shares of the top categories
    latest: float | dict[str, float]
    previous_n: int
    latest_n: int

    @property
    def verdict(self) -> str:
        if min(self.previous_n, self.latest_n) < MIN_ROWS:
            return "too few"  # PSI over 10 bins of a few dozen values is mostly noise
        return "shift" if self.psi > PSI_SHIFT else "moderate" if self.psi > PSI_MODERATE else "stable"


def psi_numeric(previous: np.ndarray, latest: np.ndarray, bins: int = BINS) -> float:
    """PSI over the previous window's quantile bins (ties merged), both ends open."""
    if len(previous) == 0 or len(latest) == 0:
        return float("nan")
    edges = np.unique(np.quantile(previous, np.linspace(0, 1, bins + 1))[1:-1])
    expected = np.bincount(np.searchsorted(edges, previous, side="right"), minlength=len(edges) + 1)
    actual = np.bincount(np.searchsorted(edges, latest, side="right"), minlength=len(edges) + 1)
    return _psi(expected / len(previous), actual / len(latest))


def psi_categorical(previous: dict[str, int], latest: dict[str, int]) -> float:
    if not previous or not latest:
        return float("nan")
    keys = sorted(set(previous) | set(latest))
    expected = np.array([previous.get(k, 0) for k in keys], dtype=np.float64)
    actual = np.array([latest.get(k, 0) for k in keys], dtype=np.float64)
    return _psi(expected / expected.sum(), actual / actual.sum())


def _psi(expected: np.ndarray, actual: np.ndarray) -> float:
    e, a = np.clip(expected, EPSILON, None), np.clip(actual, EPSILON, None)
    return float(np.sum((a - e) * np.log(a / e)))


def ks_statistic(previous: np.ndarray, latest: np.ndarray) -> float:
    """The largest gap between the two empirical distribution functions."""
    if len(previous) == 0 or len(latest) == 0:
        return float("nan")
    values = np.sort(np.concatenate([previous, latest]))
    f_prev = np.searchsorted(np.sort(previous), values, side="right") / len(previous)
    f_last = np.searchsorted(np.sort(latest), values, side="right") / len(latest)
    return float(np.max(np.abs(f_prev - f_last)))


def latest_windows(engine: Engine, days: float, end: datetime | None = None) -> tuple[Window, Window] | None:
    """(previous, latest): two consecutive windows of ``days`` ending at ``end`` (default: just after the newest
    event), or None when there are no events."""
    if end is None:
        with engine.connect() as conn:
            newest = conn.execute(text("select max(occurred_at) from events where occurred_at <= now()")).scalar()
        if newest is None:
            return None
        end = newest + timedelta(microseconds=1)
    length = timedelta(days=days)
    return Window(end - 2 * length, end - length), Window(end - length, end)


def training_windows(engine: Engine, model_name: str = "ctr_model") -> tuple[Window, Window] | None:
    """(previous, latest) training windows of the model's last two registry versions that recorded one
    (``dataset.train_time_range``), or None when fewer than two did. The latest window starts where the previous one
    ended when they overlap (each run trains on all history): what is compared is the data the new run added."""
    with engine.connect() as conn:
        rows = conn.execute(
            text("""select dataset->'train_time_range' from model_versions
                    where model_name = :m and jsonb_typeof(dataset->'train_time_range') = 'array'
                    order by version desc limit 2"""),
            {"m": model_name},
        ).scalars().all()  # fmt: skip
    if len(rows) < 2:
        return None
    (latest_start, latest_end), (previous_start, previous_end) = ([datetime.fromisoformat(t) for t in r] for r in rows)
    previous = Window(previous_start, previous_end + timedelta(microseconds=1))
    latest = Window(max(latest_start, previous.end), latest_end + timedelta(microseconds=1))
    return (previous, latest) if latest.end > latest.start else None


def feature_shifts(engine: Engine, previous: Window, latest: Window) -> list[FeatureShift]:
    """Every feature's shift from ``previous`` to ``latest``."""
    out = []
    with engine.connect() as conn:

        def read(sql: str, window: Window) -> list:
            return list(conn.execute(text(sql), {"start": window.start, "end": window.end}).all())

        for name, sql in _NUMERIC_SQL.items():
            before = np.array([r[0] for r in read(sql, previous)], dtype=np.float64)
            after = np.array([r[0] for r in read(sql, latest)], dtype=np.float64)
            out.append(
                FeatureShift(name, "numeric", psi_numeric(before, after), ks_statistic(before, after),
                             _mean(before), _mean(after), len(before), len(after))
            )  # fmt: skip
        for name, sql in _CATEGORICAL_SQL.items():
            before_counts = {k: int(n) for k, n in read(sql, previous)}
            after_counts = {k: int(n) for k, n in read(sql, latest)}
            out.append(
                FeatureShift(name, "categorical", psi_categorical(before_counts, after_counts), None,
                             _top_shares(before_counts), _top_shares(after_counts),
                             sum(before_counts.values()), sum(after_counts.values()))
            )  # fmt: skip
    return out


def _mean(values: np.ndarray) -> float:
    return float(values.mean()) if len(values) else float("nan")


def _top_shares(counts: dict[str, int], top: int = 3) -> dict[str, float]:
    total = sum(counts.values()) or 1
    return {k: round(n / total, 3) for k, n in sorted(counts.items(), key=lambda kv: -kv[1])[:top]}
