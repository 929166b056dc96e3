"""The models the platform serves, by the names Triton, the model registry, the training jobs and the services all
use (each is also a folder in triton_models/ and in the model repository), and the shapes both sides agree on."""

from __future__ import annotations

import zlib
from functools import lru_cache

TEXT_ENCODER = "text_encoder"  # product/FAQ/query embeddings: ANN retrieval, semantic search, FAQ answers
CTR_MODEL = "ctr_model"  # pCTR of an (user, ad, slot) impression
RECS_RANKER = "recs_ranker"  # P(the user interacts next with this candidate | recent history)
INTENT_CLASSIFIER = "intent_classifier"  # the chat assistant's intent of a message
MODEL_NAMES = (TEXT_ENCODER, CTR_MODEL, RECS_RANKER, INTENT_CLASSIFIER)
# chat replies phrased from tool results (decoupled, streamed); optional, so not trained by `ecomai train` with the
# models above: shared/learning/reply_generator_job.py publishes it
REPLY_GENERATOR = "reply_generator"

EMBEDDING_DIM = 384  # the text encoder's output width = the embeddings table's vector width

# recs_ranker's contract (triton_models/recs_ranker/config.pbtxt): what the service sends, what training builds
RANKER_MAX_HISTORY = 50  # history positions the model reads (newest first); serving sends at most this many
RANKER_MAX_CANDIDATES = 512  # candidates per user per call
RANKER_ID_BUCKETS = 1 << 16  # hashed item-id vocabulary; bucket 0 is padding


@lru_cache(maxsize=1 << 18)  # serving hashes the same catalogue ids for every request
def item_bucket(product_id: str, buckets: int = RANKER_ID_BUCKETS) -> int:
    """Stable id bucket of a product in [1, buckets); 0 is reserved for padding. Serving and training both call
    this, so a product keeps its bucket across processes and versions (crc32, not Python's salted ``hash``)."""
    if not product_id:
        return 0
    return 1 + zlib.crc32(product_id.encode()) % (buckets - 1)
