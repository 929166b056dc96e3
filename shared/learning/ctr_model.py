"""The CTR network: DCN-v2 (cross layers + a deep MLP, in parallel) over field embeddings, normalised numeric
features and projected text embeddings; the same module as logistic regression (``kind="linear"``) and without text
(``use_text=False``) for the baselines recorded with every version.

The module is saved as TorchScript and served by shared/inference/tabular_backend.py: ``forward`` takes the Triton
inputs (CAT, NUM, AD_TEXT, USER_TEXT) and returns the calibrated probability and per-field contributions (the change
in calibrated logit when one field is replaced by its training mean; positive = the field raised the pCTR);
``predict`` returns the probability alone, at the cost of one pass.
(No ``from __future__ import annotations`` here: TorchScript reads the buffer annotations as real types.)
"""

import torch
from torch import nn

from shared.core.model_catalog import EMBEDDING_DIM
from shared.learning.ctr_features import CAT_BUCKETS, NUM_FIELDS


class CtrNet(nn.Module):
    # buffers: saved with the module, moved with it, never trained
    sizes: torch.Tensor  # vocabulary size of each categorical field
    offsets: torch.Tensor  # where each field's buckets start in the one embedding table
    known: torch.Tensor  # buckets the training data filled; the others read as their field's bucket 0
    num_mean: torch.Tensor
    num_std: torch.Tensor
    text_gate: torch.Tensor  # 0 for the model without text
    cal_a: torch.Tensor  # Platt calibration: p = sigmoid(cal_a * logit + cal_b)
    cal_b: torch.Tensor
    field_masks: torch.Tensor
    baseline: torch.Tensor

    def __init__(
        self,
        kind: str = "dcn",
        use_text: bool = True,
        field_dim: int = 8,
        text_dim: int = 16,
        cross_layers: int = 2,
        hidden: tuple[int, int] = (128, 64),
        dropout: float = 0.3,  # measured on the small demo shop: 0.1 overfits the id embeddings sooner
        cat_buckets: tuple[int, ...] = tuple(CAT_BUCKETS.values()),  # in CAT_FIELDS order
        num_fields: int = len(NUM_FIELDS),
        text_input_dim: int = EMBEDDING_DIM,
    ):
        """The defaults are the shop's feature spec (ctr_features.py); other field lists (the public CTR data sets
        in bench/ctr_public.py) pass their vocabulary sizes, their number count and a text width."""
        super().__init__()
        if kind not in ("dcn", "linear"):
            raise ValueError(f"kind must be 'dcn' or 'linear', got {kind!r}")
        self.kind = kind
        if kind == "linear":  # one weight per bucket, per number, per text dimension
            field_dim, text_dim = 1, text_input_dim
        sizes = torch.tensor(cat_buckets, dtype=torch.long)
        self.register_buffer("sizes", sizes)
        self.register_buffer("offsets", torch.cumsum(sizes, 0) - sizes)
        self.register_buffer("known", torch.zeros(int(sizes.sum()), dtype=torch.bool))
        self.register_buffer("num_mean", torch.zeros(num_fields))
        self.register_buffer("num_std", torch.ones(num_fields))
        self.register_buffer("text_gate", torch.tensor(1.0 if use_text else 0.0))
        self.register_buffer("cal_a", torch.tensor(1.0))
        self.register_buffer("cal_b", torch.tensor(0.0))
        self.embedding = nn.Embedding(int(sizes.sum()), field_dim)
        nn.init.normal_(self.embedding.weight, std=0.01)
        self.ad_proj: nn.Module = nn.Linear(text_input_dim, text_dim) if kind == "dcn" else nn.Identity()
        self.user_proj: nn.Module = nn.Linear(text_input_dim, text_dim) if kind == "dcn" else nn.Identity()
        widths = [field_dim] * len(cat_buckets) + [1] * num_fields + [text_dim, text_dim]
        width = sum(widths)
        # field f occupies columns [starts[f], starts[f] + widths[f]) of x0; masks[f] marks them
        masks = torch.zeros(len(widths), width)
        start = 0
        for f, w in enumerate(widths):
            masks[f, start : start + w] = 1.0
            start += w
        self.register_buffer("field_masks", masks)
        self.register_buffer("baseline", torch.zeros(width))  # mean x0 on the training set
        self.cross = nn.ModuleList([nn.Linear(width, width) for _ in range(cross_layers if kind == "dcn" else 0)])
        self.deep = (
            nn.Sequential(
                nn.Linear(width, hidden[0]),
                nn.ReLU(),
                nn.Dropout(dropout),
                nn.Linear(hidden[0], hidden[1]),
                nn.ReLU(),
                nn.Dropout(dropout),
            )  # fmt: skip
            if kind == "dcn"
            else nn.Identity()
        )
        self.out = nn.Linear(width + hidden[1] if kind == "dcn" else width, 1)

    def x0(self, cat: torch.Tensor, num: torch.Tensor, ad_text: torch.Tensor, user_text: torch.Tensor) -> torch.Tensor:
        """The concatenated input row of every impression; unknown buckets read as each field's bucket 0."""
        idx = torch.remainder(cat, self.sizes) + self.offsets
        idx = torch.where(self.known[idx], idx, self.offsets.expand_as(idx))
        fields = self.embedding(idx).flatten(1)
        numbers = (num - self.num_mean) / self.num_std
        ad = self.ad_proj(ad_text) * self.text_gate
        user = self.user_proj(user_text) * self.text_gate
        return torch.cat([fields, numbers, ad, user], dim=1)

    def head(self, x0: torch.Tensor) -> torch.Tensor:
        """Uncalibrated logit [n] of input rows x0."""
        if self.kind == "linear":
            return self.out(x0).squeeze(1)
        x = x0
        for layer in self.cross:
            x = x0 * layer(x) + x
        return self.out(torch.cat([x, self.deep(x0)], dim=1)).squeeze(1)

    def logits(self, cat: torch.Tensor, num: torch.Tensor, ad_text: torch.Tensor, user_text: torch.Tensor):
        return self.head(self.x0(cat, num, ad_text, user_text))

    @torch.jit.export
    def predict(self, cat: torch.Tensor, num: torch.Tensor, ad_text: torch.Tensor, user_text: torch.Tensor):
        """Calibrated probability [n, 1] alone: one pass over the rows, where ``forward`` makes 1 + fields passes
        for the contributions (tabular_backend.py calls this when a request asks for PROB only)."""
        return torch.sigmoid(self.cal_a * self.logits(cat, num, ad_text, user_text) + self.cal_b).unsqueeze(1)

    def forward(
        self, cat: torch.Tensor, num: torch.Tensor, ad_text: torch.Tensor, user_text: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(calibrated probability [n, 1], contribution of each field to the calibrated logit [n, fields])."""
        x0 = self.x0(cat, num, ad_text, user_text)
        n, width = x0.shape
        fields = self.field_masks.shape[0]
        masks = self.field_masks.unsqueeze(1)  # [fields, 1, width]
        occluded = x0.unsqueeze(0) * (1 - masks) + self.baseline.view(1, 1, width) * masks
        all_rows = torch.cat([x0, occluded.reshape(fields * n, width)], dim=0)
        logits = self.head(all_rows)
        full = logits[:n]
        contrib = self.cal_a * (full.unsqueeze(0) - logits[n:].view(fields, n))
        prob = torch.sigmoid(self.cal_a * full + self.cal_b)
        return prob.unsqueeze(1), contrib.transpose(0, 1).contiguous()
