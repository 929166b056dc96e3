"""Embedding refresh: product, ad and FAQ texts through the text_encoder on Triton into the ``embeddings`` table.

Upserts on (entity_type, entity_id, model_name), stamps the encoder version that answered, and deletes the
embeddings of entities that no longer exist, so running it twice is harmless.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from sqlalchemy import Engine, select, text
from sqlalchemy.dialects.postgresql import insert

from shared.core.model_catalog import TEXT_ENCODER
from shared.core.text_features import Ad, Product, ad_text, faq_text, product_text
from shared.inference.client import ModelControl
from shared.store.schema import Embedding, ModelVersion

log = logging.getLogger(__name__)
ENTITY_TYPES = ("product", "faq", "ad")  # "ad": the CTR model's AD_TEXT input


def entity_texts(engine: Engine, entity_type: str) -> list[tuple[str, str]]:
    """(entity id, the text the encoder embeds) of every product, FAQ entry or ad; training embeds the same."""
    with engine.connect() as conn:
        if entity_type == "ad":
            ads = conn.execute(
                text(
                    "select ad_id, title, coalesce(body,'') as body, coalesce(category,'') as category,"
                    " coalesce(keywords,'[]'::jsonb) as keywords from ads order by ad_id"
                )
            ).mappings()
            return [(r["ad_id"], ad_text(Ad(r["title"], r["category"], tuple(r["keywords"])), r["body"])) for r in ads]
        if entity_type == "product":
            rows = (
                conn.execute(
                    text(
                        "select product_id, title, coalesce(category,'') as category, coalesce(brand,'') as brand,"
                        " price_micros, coalesce(description,'') as description from products order by product_id"
                    )
                )
                .mappings()
                .all()
            )
            return [
                (
                    r["product_id"],
                    product_text(Product(r["title"], r["category"], r["brand"], r["price_micros"], r["description"])),
                )
                for r in rows
            ]
        rows = conn.execute(text("select faq_id, question, answer from faq_entries order by faq_id")).mappings().all()
        return [(r["faq_id"], faq_text(r["question"], r["answer"])) for r in rows]


def encoder_version(engine: Engine, client: ModelControl) -> int:
    """The text_encoder version Triton serves now (the registry's serving row when Triton can't say)."""
    try:
        ready = client.ready_versions(TEXT_ENCODER)
    except Exception:  # noqa: BLE001 - fall back to the registry
        ready = []
    if ready:
        return max(ready)
    with engine.connect() as conn:
        found = conn.execute(
            select(ModelVersion.version).where(
                ModelVersion.model_name == TEXT_ENCODER, ModelVersion.status == "serving"
            )
        ).scalar()
    return int(found or 0)


def _current(engine: Engine, entity_type: str, version: int) -> set[str]:
    with engine.connect() as conn:
        return set(
            conn.execute(
                text(
                    "select entity_id from embeddings where entity_type = :t and model_name = :m and model_version = :v"
                ),
                {"t": entity_type, "m": TEXT_ENCODER, "v": version},
            ).scalars()
        )


def refresh_embeddings(
    engine: Engine, client: ModelControl, entity_type: str = "product", batch: int = 64, missing_only: bool = False
) -> int:
    """Embeds every product (product_text), FAQ entry (question + answer) or ad (ad_text); returns the number
    written.
    ``missing_only`` skips entities that already have an embedding from the serving encoder version (a restart);
    the scheduled refresh re-embeds everything, which also picks up edited texts.
    Raises ModelUnavailable when the text encoder can't answer (nothing half-done is left: each batch commits
    complete rows)."""
    if entity_type not in ENTITY_TYPES:
        raise ValueError(f"entity_type must be one of {ENTITY_TYPES}, got {entity_type!r}")
    if batch < 1:
        raise ValueError(f"batch must be >= 1, got {batch}")
    items = entity_texts(engine, entity_type)
    version = encoder_version(engine, client)
    current = _current(engine, entity_type, version) if missing_only else set()
    written = 0
    todo = [item for item in items if item[0] not in current]
    for start in range(0, len(todo), batch):
        chunk = todo[start : start + batch]
        vectors = client.embed([t for _, t in chunk])
        now = datetime.now(UTC)
        rows = [
            {
                "entity_type": entity_type,
                "entity_id": eid,
                "model_name": TEXT_ENCODER,
                "model_version": version,
                "vector": vec.tolist(),
                "updated_at": now,
            }
            for (eid, _), vec in zip(chunk, vectors)
        ]
        stmt = insert(Embedding).values(rows)
        stmt = stmt.on_conflict_do_update(
            index_elements=[Embedding.entity_type, Embedding.entity_id, Embedding.model_name],
            set_={
                "model_version": stmt.excluded.model_version,
                "vector": stmt.excluded.vector,
                "updated_at": stmt.excluded.updated_at,
            },
        )
        with engine.begin() as conn:
            conn.execute(stmt)
        written += len(rows)
    with engine.begin() as conn:  # entities deleted since the last refresh
        conn.execute(
            text("delete from embeddings where entity_type = :t and model_name = :m and not (entity_id = any(:ids))"),
            {"t": entity_type, "m": TEXT_ENCODER, "ids": [eid for eid, _ in items]},
        )
    log.info("%d %s embeddings refreshed with %s v%d", written, entity_type, TEXT_ENCODER, version)
    return written
