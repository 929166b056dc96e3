"""``ecomai bench recs`` on a generic interactions CSV of a few hundred synthetic rows (the code path of every data
set: load, split, embed, train the ranker, item_cf, BPR and popularity, replay the platform's retrieval + ranking,
rank over the whole catalog, JSON + table), and the
pure parts of the protocol (RecBole's split sizes, the full-ranking metrics)."""

from __future__ import annotations

import csv
import json
import random

import numpy as np
import pytest

from bench.recs import main
from bench.recs_data import AMAZON, _recbole_counts, load_amazon, load_csv
from shared.learning.recs_metrics import full_ranking_metrics


def _walks_csv(path, users: int = 40, items: int = 30, steps: int = 7) -> None:
    """Each user walks the catalog in order from a random start (i3 -> i4 -> ...): a signal popularity can't see."""
    rng = random.Random(1)
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["user", "item", "timestamp"])
        for u in range(users):
            start = rng.randrange(items)
            for s in range(steps):
                writer.writerow([f"u{u}", f"i{(start + s) % items}", 1000 * s + u])


def test_bench_recs_on_a_csv_ranks_the_walk_above_popularity(tmp_path, capsys):
    data_file, out = tmp_path / "walks.csv", tmp_path / "recs_walks.json"
    _walks_csv(data_file)
    data = load_csv(data_file)
    assert len(data.test.users) == 40  # leave-one-out: each user's last item, after all the others
    for hist, (target,) in zip(data.test.hist, data.test.targets):
        assert data.item_ids[target] == f"i{(int(data.item_ids[hist[-1]][1:]) + 1) % 30}"
    assert (
        main(["--dataset", str(data_file), "--seeds", "1", "--max-seconds", "600", "--epochs", "15", "--out", str(out)])
        == 0
    )
    report = json.loads(out.read_text())
    models = report["results"]["walks"]["models"]
    assert set(models) == {"platform", "platform_ranker", "item_cf", "bpr", "popularity"}
    assert {"ndcg@10", "hr@10", "recall@10", "mrr@10"} <= set(models["bpr"])
    popular = models["popularity"]["ndcg@10"]["mean"]
    for model in ("platform", "platform_ranker", "item_cf"):  # popularity ~0.11 over 30 items; the walk is learnt
        assert models[model]["ndcg@10"]["mean"] > popular + 0.2, models
    served = models["platform"]["training"][0]
    by_weight = served["valid_ndcg@10_by_cf_weight"]  # the served weight is the one best on validation
    assert by_weight[f"{served['cf_weight']:g}"] == max(by_weight.values()), served
    assert served["item_cf"]["lambda"] > 0
    assert "platform_ranker" in capsys.readouterr().out  # the table


def test_recbole_split_sizes():
    assert _recbole_counts(20) == [16, 2, 2]
    assert _recbole_counts(25) == [21, 2, 2]  # int(2.5) = 2 for the later parts, the rest trains
    assert _recbole_counts(5) == [3, 1, 1]  # a part between 0 and 1 interaction gets one


def test_full_ranking_metrics_exclude_seen_items_and_break_ties_against_the_target():
    scores = np.array([[0.9, 0.8, 0.1, 0.1], [0.5, 0.5, 0.5, 0.5]])
    m = full_ranking_metrics(scores, [[1], [2]], exclude=[[0], []], k=2)
    # user 0: item 0 excluded, so item 1 ranks first; user 1: all tied, the target ranks last (outside the top 2)
    assert m["hr@2"] == pytest.approx(0.5) and m["ndcg@2"] == pytest.approx(0.5) and m["mrr@2"] == pytest.approx(0.5)
    two = full_ranking_metrics(np.array([[0.9, 0.1, 0.8]]), [[0, 1]], k=2)
    assert two["recall@2"] == pytest.approx(0.5) and two["ndcg@2"] == pytest.approx(1 / (1 + 1 / np.log2(3)))


@pytest.mark.skipif(not AMAZON.is_dir(), reason="the Amazon data set is not in ../shared/data")
def test_amazon_early_stopping_targets_are_not_training_data():
    data = load_amazon("Office_Products")
    assert len(data.valid.users) > 100
    for user, (target,) in zip(data.valid.users, data.valid.targets):
        assert target not in data.train[user]  # EASE/BPR would read it back from the user's own row
