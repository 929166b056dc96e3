"""Data sets of ``ecomai bench recs``, each turned into one shape: a catalog (item ids + text embeddings), the
training interactions, and validation / test sets to rank over the whole catalog.

- ``ml-100k`` (RecBole's protocol): each user's ratings (all count as positives) shuffled and split 8/1/1 with
  RecBole's rounding; validation and test rank every item but the user's training items (and, for test, validation
  items). Item text: title, year and genres.
- ``amazon`` (MiniOneRec's Industrial_and_Scientific / Office_Products time split, only valid/test files present):
  every test row (history -> target) ranked over the whole catalog, nothing excluded; training pairs are the valid
  rows and the prefixes inside each user's first test-row history (later rows' histories hold earlier test
  targets), minus the early-stopping rows' targets (never a training target or item of their user). Item text:
  title, brand, description.
- a CSV ``user,item,timestamp[,text]``: leave-one-out by time (last item test, the one before it validation).
"""

from __future__ import annotations

import ast
import csv
import json
import random
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from shared.learning.recs_training import Catalog

DATA_ROOT = Path(__file__).resolve().parents[2] / "shared" / "data"
ML100K = DATA_ROOT / "ml-100k" / "recbole"
AMAZON = DATA_ROOT / "amazon18_industrial_office_minionerec"
AMAZON_CATEGORIES = ("Industrial_and_Scientific", "Office_Products")


@dataclass
class EvalSet:
    """Rows to rank: the user (for BPR), the history (item indices, oldest first), relevant items, excluded items."""

    users: list[int] = field(default_factory=list)
    hist: list[list[int]] = field(default_factory=list)
    targets: list[list[int]] = field(default_factory=list)
    exclude: list[list[int]] | None = None

    def add(self, user: int, hist: list[int], targets: list[int], exclude: list[int] | None = None) -> None:
        self.users.append(user)
        self.hist.append(hist)
        self.targets.append(targets)
        if exclude is not None:
            if self.exclude is None:
                self.exclude = []
            self.exclude.append(exclude)


@dataclass
class BenchData:
    name: str
    protocol: str
    item_ids: list[str]
    item_texts: list[str]  # "" where the data has no text
    n_users: int
    train: list[list[int]]  # per user, training items oldest first
    pairs: list[tuple[list[int], int]]  # the ranker's (history oldest first, next item) training examples
    valid: EvalSet
    test: EvalSet
    info: dict = field(default_factory=dict)

    def catalog(self, emb: np.ndarray) -> Catalog:
        return Catalog(self.item_ids, emb)


def _recbole_counts(n: int, ratios: tuple[float, ...] = (0.8, 0.1, 0.1)) -> list[int]:
    """RecBole's ``_calcu_split_ids``: int(ratio * n) for the later parts, the rest first; a part whose share is
    between 0 and 1 interaction gets one while the first keeps more than one."""
    cnt = [int(r * n) for r in ratios]
    cnt[0] = n - sum(cnt[1:])
    for i in range(1, len(ratios)):
        if cnt[0] <= 1:
            break
        if 0 < ratios[-i] * n < 1:
            cnt[-i] += 1
            cnt[0] -= 1
    return cnt


def load_ml100k(seed: int) -> BenchData:
    by_user: dict[str, list[tuple[float, str]]] = defaultdict(list)
    with open(ML100K / "ml-100k.inter", encoding="utf-8") as f:
        next(f)
        for line in f:
            user, item, _rating, ts = line.rstrip("\n").split("\t")
            by_user[user].append((float(ts), item))
    texts: dict[str, str] = {}
    with open(ML100K / "ml-100k.item", encoding="utf-8") as f:
        next(f)
        for line in f:
            item, title, year, genres = (line.rstrip("\n").split("\t") + ["", "", ""])[:4]
            texts[item] = f"{title} ({year}). Genres: {genres}"
    item_ids = sorted(texts, key=int)
    index = {item: i for i, item in enumerate(item_ids)}
    rng = random.Random(seed)
    data = BenchData(
        "ml-100k",
        "RecBole: random 8/1/1 per user, full ranking",
        item_ids,
        [texts[i] for i in item_ids],
        len(by_user),
        [],
        [],
        EvalSet(exclude=[]),
        EvalSet(exclude=[]),
    )
    for u, user in enumerate(sorted(by_user, key=int)):
        rows = by_user[user][:]
        rng.shuffle(rows)
        n_train, n_valid, _ = _recbole_counts(len(rows))
        train = sorted(rows[:n_train])  # the ranker reads a history in time order
        valid, test = rows[n_train : n_train + n_valid], rows[n_train + n_valid :]
        hist = [index[i] for _, i in train]
        data.train.append(hist)
        data.valid.add(u, hist, [index[i] for _, i in valid], hist)
        data.test.add(u, hist, [index[i] for _, i in test], hist + [index[i] for _, i in valid])
    data.pairs = cloze_pairs(data.train, rng)
    return data


def cloze_pairs(train: list[list[int]], rng: random.Random, per_user: int = 40) -> list[tuple[list[int], int]]:
    """For a random split (the held-out items are anywhere in time): each of up to ``per_user`` training items as
    the target of the user's other training items."""
    pairs = []
    for hist in train:
        for t in rng.sample(range(len(hist)), min(per_user, len(hist))):
            pairs.append((hist[:t] + hist[t + 1 :], hist[t]))
    return pairs


def _amazon_rows(path: Path) -> list[tuple[str, list[int], int]]:
    with open(path, encoding="utf-8", newline="") as f:
        return [(r["user_id"], json.loads(r["history_item_id"]), int(r["item_id"])) for r in csv.DictReader(f)]


def load_amazon(category: str) -> BenchData:
    folder = AMAZON / category
    items = json.loads((folder / f"{category}.item.json").read_text())
    item_ids = sorted(items, key=int)
    texts = []
    for i in item_ids:
        it = items[i]
        try:
            desc = " ".join(ast.literal_eval(it.get("description") or "[]"))
        except (ValueError, SyntaxError):
            desc = it.get("description") or ""
        texts.append(f"{it['title']}. Brand: {it.get('brand') or 'unknown'}. {desc[:300]}")
    valid_rows = _amazon_rows(next(folder.glob("valid_*.csv")))
    test_rows = _amazon_rows(next(folder.glob("test_*.csv")))
    users = {u: k for k, u in enumerate(sorted({u for u, _, _ in valid_rows + test_rows}))}
    seen: dict[int, list[int]] = defaultdict(list)
    pairs: set[tuple[tuple[int, ...], int]] = set()
    n_stop = max(1, len(valid_rows) // 10)  # early stopping: the last 10% of valid rows (sorted by target time)
    stop = valid_rows[-n_stop:]
    # a held-out target is never a training target nor in its user's training items (EASE and BPR would read it
    # back from the user's own row), though later histories hold it
    held: dict[str, set[int]] = defaultdict(set)
    for u, _, y in stop:
        held[u].add(y)
    for u, hist, target in valid_rows:
        if target not in held[u]:
            pairs.add((tuple(hist), target))
        seen[users[u]] += [i for i in [*hist, target] if i not in held[u]]
    # a user's later test rows hold the targets of the earlier ones in their histories: only the history of each
    # user's first test row (all before the test period) is training data
    first_test: dict[str, list[int]] = {}
    for u, hist, _ in test_rows:
        first_test.setdefault(u, hist)
    for u, hist in first_test.items():
        seen[users[u]] += [i for i in hist if i not in held[u]]
        for t in range(1, len(hist)):
            if hist[t] not in held[u]:
                pairs.add((tuple(hist[:t]), hist[t]))
    train_pairs = [(list(h), t) for h, t in sorted(pairs)]
    data = BenchData(
        f"amazon-{category}",
        "MiniOneRec time split, each test row ranked over all items",
        item_ids,
        texts,
        len(users),
        [list(dict.fromkeys(seen[k])) for k in range(len(users))],
        train_pairs,
        EvalSet(),
        EvalSet(),
    )
    for u, hist, target in stop:
        data.valid.add(users[u], hist, [target])
    for u, hist, target in test_rows:
        data.test.add(users[u], hist, [target])
    return data


def load_csv(path: Path) -> BenchData:
    """user,item,timestamp[,text] with a header; leave-one-out by time per user (users with 3+ items)."""
    by_user: dict[str, list[tuple[float, str]]] = defaultdict(list)
    texts: dict[str, str] = {}
    with open(path, encoding="utf-8", newline="") as f:
        for r in csv.DictReader(f):
            by_user[r["user"]].append((float(r["timestamp"]), r["item"]))
            if r.get("text"):
                texts[r["item"]] = r["text"]
    item_ids = sorted({i for rows in by_user.values() for _, i in rows})
    index = {item: i for i, item in enumerate(item_ids)}
    users = sorted(u for u, rows in by_user.items() if len(rows) >= 3)
    data = BenchData(
        path.name,
        "leave-one-out by time, full ranking",
        item_ids,
        [texts.get(i, "") for i in item_ids],
        len(users),
        [],
        [],
        EvalSet(),
        EvalSet(),
    )
    for u, user in enumerate(users):
        seq = [index[i] for _, i in sorted(by_user[user])]
        data.train.append(seq[:-2])
        data.valid.add(u, seq[:-2], [seq[-2]])
        data.test.add(u, seq[:-1], [seq[-1]])
        data.pairs += [(seq[:t], seq[t]) for t in range(1, len(seq) - 2)]
    return data
