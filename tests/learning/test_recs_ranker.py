"""The sequential recs_ranker: trained by ``train_one`` on a shop whose next item follows from the last one, it beats
popularity by a wide margin on the held-out next items; the exported module keeps the serving contract (SCORES,
CONTRIB that splits each score by history position, text-only scores for ids it never saw)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import torch
from sqlalchemy import insert

from shared.core.model_catalog import EMBEDDING_DIM, RECS_RANKER, item_bucket
from shared.core.settings import Settings
from shared.learning.ctr_job import encode_texts
from shared.learning.embeddings_job import entity_texts
from shared.learning.recs_ranker_model import ID_BUCKETS, RecsRankerNet
from shared.learning.registry import read_meta
from shared.store import schema as db

T0 = datetime(2026, 1, 1, tzinfo=UTC)
PRODUCTS, USERS, STEPS = 40, 80, 8


def _sequential_shop(engine) -> None:
    """80 shoppers who each walk 8 products in catalog order from a random start (p07 -> p08 -> p09 ...): the next
    item is the successor of the last one, while every product is about equally popular. Steps of all shoppers
    interleave in time, so the time split holds out each shopper's 7th or 8th step."""
    rng = np.random.default_rng(5)
    products = [
        {"product_id": f"p{i:02d}", "title": f"Gadget model {i}", "category": ("tools", "toys")[i % 2],
         "price_micros": 1_000_000}
        for i in range(PRODUCTS)
    ]  # fmt: skip
    users = [{"user_id": f"u{j:02d}", "segment": "tech", "country": "US"} for j in range(USERS)]
    events = []
    for j in range(USERS):
        start = int(rng.integers(PRODUCTS))
        for s in range(STEPS):
            events.append(
                {"event_id": f"e{j}-{s}", "type": "view", "user_id": f"u{j:02d}",
                 "product_id": f"p{(start + s) % PRODUCTS:02d}", "occurred_at": T0 + timedelta(minutes=100 * s + j),
                 "properties": {}}
            )  # fmt: skip
    with engine.begin() as conn:
        conn.execute(insert(db.User), users)
        conn.execute(insert(db.Product), products)
        conn.execute(insert(db.Event), events)


def test_ranker_job_beats_popularity_on_a_sequential_shop(data_engine, tmp_path):
    from shared.learning.train import train_one

    _sequential_shop(data_engine)
    settings = Settings(database_url="unused://", model_repository=tmp_path, train_profile="tiny")
    published = train_one(data_engine, settings, RECS_RANKER)
    metrics = published.metrics
    ours, popular = metrics["next_item"], metrics["popularity_next_item"]
    assert ours["users"] == popular["users"] == USERS  # every shopper's held-out next item, ranked over 40
    # popularity ranks the successor ~at random (NDCG@10 ~0.1); the ranker learns the walk (~0.9 here)
    assert ours["ndcg@10"] > popular["ndcg@10"] + 0.3, metrics
    assert ours["hr@10"] > popular["hr@10"] + 0.3, metrics
    # the served blend with item_cf, its weight chosen on validation, recorded with the version
    blended, weight = metrics["blended_next_item"], metrics["item_cf"]["blend_weight"]
    assert blended["users"] == USERS and blended["ndcg@10"] > popular["ndcg@10"] + 0.3, metrics
    assert metrics["item_cf_next_item"]["users"] == USERS and metrics["item_cf"]["lambda"] > 0
    meta = read_meta(tmp_path, RECS_RANKER, published.version)
    assert meta["item_cf_weight"] == weight and 0.0 <= weight <= 1.0
    assert meta["backend"] == "tabular" and meta["torchscript"] == "recs_ranker.pt"
    assert meta["inputs"]["id_buckets"] == ID_BUCKETS

    # the TorchScript file Triton's tabular backend loads, fed as serving feeds it: the products' text embeddings
    # (the embeddings table's, computed here with the same encoder) and id buckets, history newest first
    module = torch.jit.load(str(published.path / meta["torchscript"]))
    texts = entity_texts(data_engine, "product")
    emb = torch.from_numpy(encode_texts(Path(settings.backbone_path), [t for _, t in texts], 128))
    index = {pid: i for i, (pid, _) in enumerate(texts)}
    hist = ["p10", "p09", "p08"]
    scores = module.predict(
        emb[[index[p] for p in hist]].unsqueeze(0),
        torch.tensor([[item_bucket(p) for p in hist]]),
        emb.unsqueeze(0),
        torch.tensor([[item_bucket(pid) for pid, _ in texts]]),
    )
    assert texts[int(scores[0].argmax())][0] == "p11"  # after p08, p09, p10 comes p11


def test_module_contract_contributions_and_unseen_ids():
    torch.manual_seed(0)
    model = RecsRankerNet(buckets=1024).eval()
    model.known[:512] = True
    rng = np.random.default_rng(0)
    hist_emb = torch.from_numpy(rng.normal(size=(2, 6, EMBEDDING_DIM)).astype(np.float32))
    hist_ids = torch.tensor([[5, 9, 7, 0, 0, 0], [0, 0, 0, 0, 0, 0]])  # newest first; user 2 has no history
    cand_emb = torch.from_numpy(rng.normal(size=(2, 30, EMBEDDING_DIM)).astype(np.float32))
    cand_ids = torch.randint(1, 1024, (2, 30))
    cand_ids[0, 0] = 9  # a candidate the user viewed: its repeat score shows at that position
    with torch.no_grad():
        model.repeat.fill_(0.5)
        scores, contrib = model(hist_emb, hist_ids, cand_emb, cand_ids)
        _, bias = model.items(cand_emb, cand_ids)
        assert scores.shape == (2, 30) and contrib.shape == (2, 30, 6)
        torch.testing.assert_close(scores, model.predict(hist_emb, hist_ids, cand_emb, cand_ids))
        torch.testing.assert_close(contrib.sum(-1), scores - bias)  # CONTRIB splits the score by position
        assert torch.isfinite(scores).all() and (contrib[1] == 0).all()  # no history: the biases alone rank
        assert model.repeats(hist_ids, cand_ids)[0, 0].tolist() == [0, 0.5, 0, 0, 0, 0]  # in CONTRIB at position 1
        assert (contrib[0, :, 3:] == 0).all()  # padding positions contribute nothing
        # an id training never saw reads as text only: its score does not depend on which unseen id it is
        unseen = model.predict(hist_emb[:1], hist_ids[:1], cand_emb[:1, :1], torch.tensor([[600]]))
        other = model.predict(hist_emb[:1], hist_ids[:1], cand_emb[:1, :1], torch.tensor([[900]]))
        torch.testing.assert_close(unseen, other)


def test_item_bucket_is_stable_and_never_padding():
    assert item_bucket("p-0001") == 17818  # crc32: the same in every process (serving, training, any version)
    buckets = {item_bucket(f"p-{i}", 64) for i in range(1000)}
    assert 0 not in buckets and buckets <= set(range(1, 64)) and len(buckets) == 63
    assert item_bucket("") == 0
