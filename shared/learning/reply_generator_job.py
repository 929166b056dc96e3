"""Trains the reply generator, a tiny GPT-2, on (prompt, reply) pairs and publishes it as a registry version.

The model is small on purpose (2 layers, 128 wide, 300 steps: under a minute on one busy CPU core): it learns to
say what the chat templates say, copying the facts the prompt lists. Its tokenizer is word-level, built from the
pairs themselves: a word, a number or an id like "ORD-100131" (with its leading space) is one token, so copying a
fact from the prompt is one attention step, and decoding is plain concatenation, so a piece streamed is exactly the
text. A word never seen in training (in a customer's message) becomes [UNK]; the facts of the shop it was trained on
are all in its vocabulary. Any Hugging Face causal LM folder serves the same way (shared/inference/reply_backend.py).

The pairs come from the caller (services/chat/reply_examples.py builds them from the shop): the learning layer
knows no chat templates."""

from __future__ import annotations

import logging
import random
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import Engine

from shared.core.model_catalog import REPLY_GENERATOR
from shared.inference.client import ModelControl
from shared.learning.registry import PublishedVersion, deploy, publish_version

log = logging.getLogger(__name__)
# a word or id with its leading space, a punctuation mark with its leading space, or one whitespace character
TOKEN_PATTERN = r" ?[A-Za-z0-9](?:[A-Za-z0-9._\-]*[A-Za-z0-9])?| ?[^\sA-Za-z0-9]|\s"
SPECIALS = ("[PAD]", "[UNK]", "[EOS]")


@dataclass(frozen=True)
class GeneratorConfig:
    layers: int = 2
    width: int = 128
    heads: int = 4
    steps: int = 300
    batch: int = 16
    lr: float = 3e-3
    seed: int = 0
    max_positions: int = 320
    max_new_tokens: int = 96
    threads: int = 1
    checked: int = 32  # training pairs generated greedily after training: metrics["exact_match"]

    @classmethod
    def for_pairs(cls, pairs: int, epochs: float = 10.0, max_steps: int = 3000) -> GeneratorConfig:
        """Enough steps to see every pair about ``epochs`` times (copying a shop's ids needs a few passes)."""
        return cls(steps=int(min(max_steps, max(cls.steps, epochs * pairs / cls.batch))))

    def __post_init__(self) -> None:
        if self.width % self.heads:
            raise ValueError(f"width {self.width} must be a multiple of heads {self.heads}")
        if min(self.layers, self.steps, self.batch) < 1:
            raise ValueError(f"layers, steps and batch must be >= 1, got {self.layers}, {self.steps}, {self.batch}")


def build_tokenizer(texts: Sequence[str]):
    """A word-level PreTrainedTokenizerFast whose vocabulary is every token of ``texts``."""
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    split = pre_tokenizers.Split(Regex(TOKEN_PATTERN), behavior="isolated")
    counts: Counter[str] = Counter(piece for t in texts for piece, _ in split.pre_tokenize_str(t))
    vocab = {token: i for i, token in enumerate([*SPECIALS, *sorted(counts)])}
    core = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    core.pre_tokenizer = split
    core.decoder = decoders.Fuse()
    return PreTrainedTokenizerFast(
        tokenizer_object=core,
        pad_token="[PAD]",
        unk_token="[UNK]",
        eos_token="[EOS]",
        clean_up_tokenization_spaces=False,
    )


def train_generator(pairs: Sequence[tuple[str, str]], config: GeneratorConfig) -> tuple[Any, Any, dict[str, Any]]:
    """(model, tokenizer, metrics): next-token loss on the reply tokens only (the prompt is given, not learned)."""
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel

    if not pairs:
        raise ValueError("no training pairs")
    torch.manual_seed(config.seed)
    torch.set_num_threads(config.threads)
    rng = random.Random(config.seed)
    tokenizer = build_tokenizer([text for pair in pairs for text in pair])  # encoded apart, as served
    eos, pad = tokenizer.eos_token_id, tokenizer.pad_token_id
    rows = []
    for p, r in pairs:
        prompt_ids = tokenizer(p, add_special_tokens=False).input_ids
        reply_ids = tokenizer(r, add_special_tokens=False).input_ids + [eos]
        ids = (prompt_ids + reply_ids)[-config.max_positions :]
        rows.append((ids, len(ids) - len(reply_ids)))
    model = GPT2LMHeadModel(
        GPT2Config(
            vocab_size=len(tokenizer),
            n_positions=config.max_positions,
            n_embd=config.width,
            n_layer=config.layers,
            n_head=config.heads,
            resid_pdrop=0.0,
            embd_pdrop=0.0,
            attn_pdrop=0.0,
            bos_token_id=eos,
            eos_token_id=eos,
            pad_token_id=pad,
        )
    )
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=0.0)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, config.lr, total_steps=config.steps, pct_start=0.1)
    started, loss = time.perf_counter(), torch.tensor(0.0)
    model.train()
    for _ in range(config.steps):
        batch = [rows[rng.randrange(len(rows))] for _ in range(config.batch)]
        width = max(len(ids) for ids, _ in batch)
        input_ids = torch.full((len(batch), width), pad)
        labels = torch.full((len(batch), width), -100)
        mask = torch.zeros((len(batch), width), dtype=torch.long)
        for i, (ids, reply_from) in enumerate(batch):
            input_ids[i, : len(ids)] = torch.tensor(ids)
            labels[i, reply_from : len(ids)] = torch.tensor(ids[reply_from:])
            mask[i, : len(ids)] = 1
        loss = model(input_ids=input_ids, attention_mask=mask, labels=labels).loss
        optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        schedule.step()
    model.eval()
    checked = rng.sample(list(pairs), min(config.checked, len(pairs)))
    exact = sum(greedy(model, tokenizer, p, config.max_new_tokens) == r for p, r in checked)
    metrics = {
        "final_loss": round(float(loss.detach()), 4),
        "exact_match": round(exact / max(1, len(checked)), 4),
        "train_seconds": round(time.perf_counter() - started, 1),
        "vocab": len(tokenizer),
    }
    log.info("reply generator trained: %s", metrics)
    return model, tokenizer, metrics


def greedy(model, tokenizer, prompt: str, max_new_tokens: int) -> str:
    """The model's greedy continuation of ``prompt`` (what the Triton backend generates)."""
    import torch

    ids = tokenizer(prompt, return_tensors="pt", add_special_tokens=False).input_ids
    with torch.inference_mode():
        out = model.generate(
            ids,
            attention_mask=torch.ones_like(ids),
            max_new_tokens=max_new_tokens,
            do_sample=False,
            eos_token_id=tokenizer.eos_token_id,
            pad_token_id=tokenizer.pad_token_id,
        )
    return tokenizer.decode(out[0, ids.shape[1] :], skip_special_tokens=True)


def publish_reply_generator(
    engine: Engine,
    repo: Path,
    pairs: Sequence[tuple[str, str]],
    config: GeneratorConfig | None = None,
    client: ModelControl | None = None,
    instance_kind: str = "KIND_CPU",
    dataset: dict[str, Any] | None = None,
) -> PublishedVersion:
    """Trains on ``pairs``, publishes ``reply_generator`` vN into ``repo`` and, with ``client``, deploys it (load,
    a warm-up generation, serving in the registry). ``config`` None: the default model, trained for ``for_pairs``."""
    config = config or GeneratorConfig.for_pairs(len(pairs))
    model, tokenizer, metrics = train_generator(pairs, config)

    def build(folder: Path) -> dict[str, Any]:
        model.save_pretrained(folder / "hf")
        tokenizer.save_pretrained(folder / "hf")
        prompt_room = config.max_positions - config.max_new_tokens
        return {"max_new_tokens": config.max_new_tokens, "max_prompt_tokens": prompt_room, "max_length": prompt_room}

    published = publish_version(
        engine,
        repo,
        REPLY_GENERATOR,
        build,
        "causal_lm",
        params={**asdict(config), "backbone": "gpt2 (from scratch)", "mode": "full"},
        metrics=metrics,
        dataset={"pairs": len(pairs), **(dataset or {})},
    )
    if client is None:
        return published
    return deploy(client, engine, REPLY_GENERATOR, published.version, instance_kind, repo)
