# The recs_ranker contract (triton_models/recs_ranker/config.pbtxt states the same; serving codes against it):
# - Triton model "recs_ranker", tabular backend (shared/inference/tabular_backend.py) over this TorchScript module.
# - Inputs, one batch row = one user: HIST_EMB FP32 [L, 384] and HIST_IDS INT64 [L] (history newest first,
#   L <= MAX_HISTORY, id 0 = padding), CAND_EMB FP32 [C, 384] and CAND_IDS INT64 [C] (C <= MAX_CANDIDATES).
# - Embeddings: the product rows of the ``embeddings`` table for TEXT_ENCODER (a product without interactions is
#   rankable from its text alone). Ids: ``item_bucket(product_id, ID_BUCKETS)``, 0 = padding.
# - Outputs: SCORES FP32 [C] (higher = better) and CONTRIB FP32 [C, L] (each history position's share of each
#   candidate's score; the scores minus the candidate's own bias are the row sums). ``predict`` gives SCORES alone.
# - Score = dot(user state, candidate repr.) + candidate bias + learned weight x cosine(candidate text, history
#   texts) + a learned per-position bonus when the candidate is in the history; item repr. = linear projection of
#   the text embedding + a hashed item-id embedding (zero for ids training never saw).
"""The sequential recommendation ranker: a small SASRec-style self-attention encoder over the user's recent
products, each represented from its text embedding plus a hashed id embedding.

Why this shape: the cross-encoder it replaces ran MiniLM once per (history, candidate) pair; here the history is
encoded once per request and each candidate costs one dot product, so 512 candidates take a few milliseconds on CPU,
and because items start from their text embedding, new products are scored from their text at once.
The user state is an attention-weighted sum of the encoder's per-position outputs, so each candidate's score splits
exactly into one term per history position (CONTRIB): the "because you viewed X" reason.
(No ``from __future__ import annotations`` here: TorchScript reads the buffer annotations as real types.)
"""

import torch
import torch.nn.functional as F
from torch import nn

from shared.core.model_catalog import (
    EMBEDDING_DIM,
    RANKER_ID_BUCKETS,
    RANKER_MAX_CANDIDATES,
    RANKER_MAX_HISTORY,
)

MAX_HISTORY = RANKER_MAX_HISTORY
MAX_CANDIDATES = RANKER_MAX_CANDIDATES
ID_BUCKETS = RANKER_ID_BUCKETS
TORCHSCRIPT_FILE = "recs_ranker.pt"  # the file the tabular backend loads (meta.json "torchscript")


class AttentionBlock(nn.Module):
    """Pre-norm self-attention + feed-forward block on ``scaled_dot_product_attention`` (measured here: several
    times faster than nn.TransformerEncoderLayer at these sizes, where its per-call overhead dominates)."""

    def __init__(self, dim: int, heads: int, dropout: float):
        super().__init__()
        self.heads = heads
        self.norm1 = nn.LayerNorm(dim)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.out = nn.Linear(dim, dim)
        self.norm2 = nn.LayerNorm(dim)
        self.ff = nn.Sequential(nn.Linear(dim, 2 * dim), nn.GELU(), nn.Linear(2 * dim, dim))
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        b, n, d = x.shape
        qkv = self.qkv(self.norm1(x)).view(b, n, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]
        a = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        x = x + self.drop(self.out(a.transpose(1, 2).reshape(b, n, d)))
        return x + self.drop(self.ff(self.norm2(x)))


class RecsRankerNet(nn.Module):
    known: torch.Tensor  # [buckets] bool: ids training saw; the others read as "no id embedding" (text only)
    id_gate: torch.Tensor  # 1.0: item vectors add the id embedding; 0.0: text + id bias only (small shops)

    def __init__(
        self,
        dim: int = 64,
        heads: int = 2,
        layers: int = 2,
        dropout: float = 0.2,
        buckets: int = ID_BUCKETS,
        max_history: int = MAX_HISTORY,
        text_dim: int = EMBEDDING_DIM,
        attend_history: int = 16,
    ):
        """``attend_history``: the newest positions self-attention reads (the cost is quadratic in it; on the demo
        shop the 16 newest items carry the signal); the repeat scores and CONTRIB cover all ``max_history``."""
        super().__init__()
        self.buckets = buckets
        self.max_history = max_history
        self.attend = min(attend_history, max_history)
        self.register_buffer("known", torch.zeros(buckets, dtype=torch.bool))
        self.register_buffer("id_gate", torch.tensor(1.0))
        self.text_proj = nn.Linear(text_dim, dim)
        self.text_bias = nn.Linear(text_dim, 1)
        self.id_emb = nn.Embedding(buckets, dim)
        nn.init.normal_(self.id_emb.weight, std=0.02)
        self.id_bias = nn.Embedding(buckets, 1)
        nn.init.zeros_(self.id_bias.weight)
        # score added when the candidate is the item at a history position (shoppers come back to products:
        # a third of the demo shop's next items are in the history), per position: recency matters
        self.repeat = nn.Parameter(torch.zeros(max_history))
        # weight of the text affinity: cosine of the candidate's text embedding with the sum of the attended
        # history's. Training starts from popularity (the id biases) + this prior (measured on the demo shop: +30%
        # NDCG@10 over popularity alone) and learns the rest on top
        self.affinity = nn.Parameter(torch.tensor(5.0))
        self.position = nn.Embedding(self.attend, dim)
        nn.init.normal_(self.position.weight, std=0.02)
        self.blocks = nn.ModuleList([AttentionBlock(dim, heads, dropout) for _ in range(layers)])
        self.norm = nn.LayerNorm(dim)
        self.pool = nn.Linear(dim, 1)
        self.dropout = nn.Dropout(dropout)

    def items(self, emb: torch.Tensor, ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(representation [..., dim], bias [...]) of items from their text embeddings and id buckets."""
        idx = torch.remainder(ids, self.buckets)
        seen = (self.known[idx] & (idx > 0)).to(emb.dtype)
        vec = self.text_proj(emb) + self.id_emb(idx) * (seen * self.id_gate).unsqueeze(-1)
        bias = self.text_bias(emb).squeeze(-1) + self.id_bias(idx).squeeze(-1) * seen
        return vec, bias

    def user(self, hist_emb: torch.Tensor, hist_ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(user state [B, dim], pooling weight per position [B, A], per-position outputs [B, A, dim]) over the
        A = min(L, attend) newest positions.
        A user without history (all padding) has state 0: the candidates' biases alone rank them."""
        hist_emb = hist_emb[:, : self.attend]
        hist_ids = hist_ids[:, : self.attend]
        x, _ = self.items(hist_emb, hist_ids)
        return self.encode(x, hist_ids <= 0)

    def text_user(self, hist_emb: torch.Tensor, hist_ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(unit sum of the attended history's text embeddings [B, 384], 1 / norm of that sum [B, 1])."""
        keep = (hist_ids[:, : self.attend] > 0).to(hist_emb.dtype).unsqueeze(-1)
        total = (hist_emb[:, : self.attend] * keep).sum(1)
        inv = 1.0 / torch.linalg.vector_norm(total, dim=1, keepdim=True).clamp(min=1e-6)
        return total * inv, inv

    def encode(self, x: torch.Tensor, pad: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``user`` from item representations [B, L, dim] already computed (training computes the catalog's once
        per batch and gathers the histories from it) and the padding mask [B, L]."""
        steps = torch.arange(x.shape[1], device=x.device)
        x = self.dropout(x + self.position(steps).unsqueeze(0))
        # a row of padding only would make attention NaN: let it attend to its first slot (its weight is 0 below)
        attend = ~(pad & ~(pad.all(dim=1, keepdim=True) & (steps == 0).unsqueeze(0)))
        mask = attend[:, None, None, :]  # [B, 1, 1, L]: every position may attend to every real one
        h = x
        for block in self.blocks:
            h = block(h, mask)
        h = self.norm(h)
        logits = self.pool(h).squeeze(-1).masked_fill(pad, -1e9)
        weights = torch.softmax(logits, dim=1) * (~pad).to(h.dtype)
        return (weights.unsqueeze(-1) * h).sum(1), weights, h

    def score_all(self, state: torch.Tensor, item_vec: torch.Tensor, item_bias: torch.Tensor) -> torch.Tensor:
        """Scores [B, N] of every user against one shared item set (training: the whole catalog)."""
        return state @ item_vec.t() + item_bias.unsqueeze(0)

    def repeats(self, hist_ids: torch.Tensor, cand_ids: torch.Tensor) -> torch.Tensor:
        """[B, C, L]: the repeat score of each candidate at each history position holding the same item."""
        hist_ids = hist_ids[:, : self.max_history]
        same = (cand_ids.unsqueeze(2) == hist_ids.unsqueeze(1)) & (hist_ids > 0).unsqueeze(1)
        return same.to(self.repeat.dtype) * self.repeat[: hist_ids.shape[1]].view(1, 1, -1)

    @torch.jit.export
    def predict(
        self, hist_emb: torch.Tensor, hist_ids: torch.Tensor, cand_emb: torch.Tensor, cand_ids: torch.Tensor
    ) -> torch.Tensor:
        """SCORES [B, C] alone (tabular_backend.py calls this when a request asks for SCORES only)."""
        state, _, _ = self.user(hist_emb, hist_ids)
        vec, bias = self.items(cand_emb, cand_ids)
        text_user, _ = self.text_user(hist_emb, hist_ids)
        affinity = self.affinity * (cand_emb * text_user.unsqueeze(1)).sum(-1)
        return (vec * state.unsqueeze(1)).sum(-1) + bias + affinity + self.repeats(hist_ids, cand_ids).sum(-1)

    def forward(
        self, hist_emb: torch.Tensor, hist_ids: torch.Tensor, cand_emb: torch.Tensor, cand_ids: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(SCORES [B, C], CONTRIB [B, C, L]); CONTRIB[b, c, l] = weight_l * dot(h_l, candidate c) + the repeat
        score when the candidate is the item at position l, so a row sums to the candidate's score minus its bias."""
        _, weights, h = self.user(hist_emb, hist_ids)
        vec, bias = self.items(cand_emb, cand_ids)
        repeat = self.repeats(hist_ids, cand_ids)  # [B, C, min(L, max_history)]
        attended = torch.einsum("bcd,bld->bcl", vec, h) * weights.unsqueeze(1)  # [B, C, min(L, attend)]
        _, inv = self.text_user(hist_emb, hist_ids)
        hist_text = hist_emb[:, : self.attend] * (hist_ids[:, : self.attend] > 0).to(hist_emb.dtype).unsqueeze(-1)
        attended = attended + self.affinity * torch.einsum("bcd,bld->bcl", cand_emb, hist_text) * inv.unsqueeze(-1)
        contrib = repeat + F.pad(attended, [0, repeat.shape[2] - attended.shape[2]])
        return contrib.sum(-1) + bias, contrib


def export_torchscript(model: RecsRankerNet, path: str) -> None:
    model.eval()
    torch.jit.script(model).save(path)
