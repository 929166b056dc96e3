"""The models the platform serves, by the names Triton, the model registry, the training jobs and the services all
use (each is also a folder in triton_models/ and in the model repository), and the shapes both sides agree on."""

from __future__ import annotations

TEXT_ENCODER = "text_encoder"  # product/FAQ/query embeddings: ANN retrieval, semantic search, FAQ answers
CTR_MODEL = "ctr_model"  # pCTR of an (user, ad, slot) impression
RECS_RANKER = "recs_ranker"  # P(the user interacts next with this candidate | recent history)
INTENT_CLASSIFIER = "intent_classifier"  # the chat assistant's intent of a message
MODEL_NAMES = (TEXT_ENCODER, CTR_MODEL, RECS_RANKER, INTENT_CLASSIFIER)

EMBEDDING_DIM = 384  # the text encoder's output width = the embeddings table's vector width
