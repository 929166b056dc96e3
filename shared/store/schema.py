"""The feature store schema: one Postgres database shared by ads, recs, chat and the jobs.

Ids are text chosen by the shop (or the demo generator). Money is ``*_micros`` (bigint, millionths of a currency
unit) plus an ISO currency code. Free-form extras live in ``attributes``/``properties`` jsonb columns. The Alembic
migrations in ``shared/store/migrations`` must match these models (a test autogenerates a diff and expects none).
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any, cast

from pgvector.sqlalchemy import Vector
from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Date,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from shared.core.model_catalog import EMBEDDING_DIM

EVENT_TYPES = ("impression", "click", "view", "cart", "purchase", "search", "chat_feedback")
# the events that say a user engaged with a product: user histories, co-interactions, popularity, recent categories
INTERACTION_TYPES = ("view", "cart", "purchase")
ORDER_STATUSES = ("placed", "shipped", "delivered", "cancelled", "return_requested", "refunded")
MODEL_STATUSES = ("training", "candidate", "serving", "retired", "rejected", "failed")
CAMPAIGN_STATUSES = ("active", "paused", "ended")
AD_STATUSES = ("active", "paused")
MESSAGE_ROLES = ("user", "assistant")

NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def sql_list(values: tuple[str, ...]) -> str:
    """``('a', 'b')``: one of the constant tuples above as an SQL list (they hold no quotes)."""
    return f"({', '.join(repr(v) for v in values)})"


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} in {sql_list(values)}"


def _now() -> Any:
    return mapped_column(DateTime(timezone=True), server_default=func.now(), nullable=False)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map = {dict[str, Any]: JSONB, list[str]: JSONB, datetime: DateTime(timezone=True)}


class User(Base):
    __tablename__ = "users"
    user_id: Mapped[str] = mapped_column(Text, primary_key=True)
    segment: Mapped[str | None] = mapped_column(Text)
    country: Mapped[str | None] = mapped_column(String(2))
    created_at: Mapped[datetime] = _now()
    attributes: Mapped[dict[str, Any]] = mapped_column(JSONB, server_default="{}", nullable=False)


class Product(Base):
    __tablename__ = "products"
    __table_args__ = (CheckConstraint("price_micros >= 0", name="price_non_negative"), Index(None, "category"))
    product_id: Mapped[str] = mapped_column(Text, primary_key=True)
    title: Mapped[str] = mapped_column(Text)
    description: Mapped[str | None] = mapped_column(Text)
    category: Mapped[str | None] = mapped_column(Text)
    brand: Mapped[str | None] = mapped_column(Text)
    price_micros: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3), server_default="USD")
    in_stock: Mapped[bool] = mapped_column(Boolean, server_default="true")
    stock: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[datetime] = _now()
    attributes: Mapped[dict[str, Any]] = mapped_column(JSONB, server_default="{}", nullable=False)


class Campaign(Base):
    __tablename__ = "campaigns"
    __table_args__ = (CheckConstraint(_in("status", CAMPAIGN_STATUSES), name="status"),)
    campaign_id: Mapped[str] = mapped_column(Text, primary_key=True)
    advertiser: Mapped[str] = mapped_column(Text)
    name: Mapped[str] = mapped_column(Text)
    daily_budget_micros: Mapped[int | None] = mapped_column(BigInteger)
    total_budget_micros: Mapped[int | None] = mapped_column(BigInteger)
    # lifetime spend: what the shop imported plus every click charge (shared/store/ad_charges.py)
    spent_micros: Mapped[int] = mapped_column(BigInteger, server_default="0")
    start_at: Mapped[datetime | None]
    end_at: Mapped[datetime | None]
    status: Mapped[str] = mapped_column(Text, server_default="active")


class Ad(Base):
    __tablename__ = "ads"
    __table_args__ = (
        CheckConstraint(_in("status", AD_STATUSES), name="status"),
        CheckConstraint("bid_micros >= 0", name="bid_non_negative"),
        Index(None, "campaign_id"),
    )
    ad_id: Mapped[str] = mapped_column(Text, primary_key=True)
    campaign_id: Mapped[str] = mapped_column(ForeignKey("campaigns.campaign_id", ondelete="CASCADE"))
    product_id: Mapped[str | None] = mapped_column(ForeignKey("products.product_id", ondelete="SET NULL"))
    title: Mapped[str] = mapped_column(Text)
    body: Mapped[str | None] = mapped_column(Text)
    category: Mapped[str | None] = mapped_column(Text)
    keywords: Mapped[list[str]] = mapped_column(JSONB, server_default="[]", nullable=False)
    target_segments: Mapped[list[str]] = mapped_column(JSONB, server_default="[]", nullable=False)
    bid_micros: Mapped[int] = mapped_column(BigInteger)
    status: Mapped[str] = mapped_column(Text, server_default="active")
    frequency_cap_per_day: Mapped[int | None] = mapped_column(Integer)


class ServedImpression(Base):
    """An ad a RankAds response served and the GSP price a click on it costs; one insert per request. No foreign
    keys, like events: serving must not wait on them, and a charge finds its campaign through ``campaign_id``."""

    __tablename__ = "served_impressions"
    impression_id: Mapped[str] = mapped_column(Text, primary_key=True)
    ad_id: Mapped[str] = mapped_column(Text)
    campaign_id: Mapped[str] = mapped_column(Text)
    user_id: Mapped[str | None] = mapped_column(Text)  # None: served to an anonymous shopper
    price_micros: Mapped[int] = mapped_column(BigInteger)
    served_at: Mapped[datetime] = _now()
    # the ctr_model version that scored it (a traffic split's arm; migration 0006); None: served from a fallback
    model_version: Mapped[int | None] = mapped_column(Integer)


class AdCharge(Base):
    """What a click on a served impression cost its campaign; the key makes every later click on it free."""

    __tablename__ = "ad_charges"
    impression_id: Mapped[str] = mapped_column(Text, primary_key=True)
    campaign_id: Mapped[str] = mapped_column(Text)
    click_event_id: Mapped[str] = mapped_column(Text)
    price_micros: Mapped[int] = mapped_column(BigInteger)  # the GSP price recorded when the ad was served
    charged_micros: Mapped[int] = mapped_column(BigInteger)  # that price capped by what was left of the budgets
    charged_at: Mapped[datetime] = _now()


class CampaignDailySpend(Base):
    """Spend of a campaign per UTC day (the daily budget and pacing read today's row)."""

    __tablename__ = "campaign_daily_spend"
    campaign_id: Mapped[str] = mapped_column(ForeignKey("campaigns.campaign_id", ondelete="CASCADE"), primary_key=True)
    day: Mapped[date] = mapped_column(Date, primary_key=True)
    spent_micros: Mapped[int] = mapped_column(BigInteger, server_default="0")


class Order(Base):
    __tablename__ = "orders"
    __table_args__ = (
        CheckConstraint(_in("status", ORDER_STATUSES), name="status"),
        Index(None, "user_id", "created_at"),
    )
    order_id: Mapped[str] = mapped_column(Text, primary_key=True)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.user_id", ondelete="CASCADE"))
    status: Mapped[str] = mapped_column(Text, server_default="placed")
    created_at: Mapped[datetime] = _now()
    updated_at: Mapped[datetime] = _now()
    total_micros: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3), server_default="USD")
    tracking_number: Mapped[str | None] = mapped_column(Text)


class OrderItem(Base):
    __tablename__ = "order_items"
    order_id: Mapped[str] = mapped_column(ForeignKey("orders.order_id", ondelete="CASCADE"), primary_key=True)
    product_id: Mapped[str] = mapped_column(ForeignKey("products.product_id"), primary_key=True)
    quantity: Mapped[int] = mapped_column(Integer, server_default="1")
    price_micros: Mapped[int] = mapped_column(BigInteger)


class EventColumns:
    """What an event says; shared by ``events`` and ``events_quarantine`` so the two can never drift apart."""

    type: Mapped[str] = mapped_column(Text)
    user_id: Mapped[str | None] = mapped_column(Text)
    product_id: Mapped[str | None] = mapped_column(Text)
    ad_id: Mapped[str | None] = mapped_column(Text)
    impression_id: Mapped[str | None] = mapped_column(Text)
    placement_id: Mapped[str | None] = mapped_column(Text)
    session_id: Mapped[str | None] = mapped_column(Text)
    query: Mapped[str | None] = mapped_column(Text)
    conversation_id: Mapped[str | None] = mapped_column(Text)
    rating: Mapped[int | None] = mapped_column(Integer)
    quantity: Mapped[int | None] = mapped_column(Integer)
    price_micros: Mapped[int | None] = mapped_column(BigInteger)
    occurred_at: Mapped[datetime]
    properties: Mapped[dict[str, Any]] = mapped_column(JSONB, server_default="{}", nullable=False)


class Event(EventColumns, Base):
    """Behaviour and feedback. ``event_id`` is the client's id: ingestion is idempotent on it.

    No foreign keys on purpose: events arrive fast and dirty; ``FeatureStore.ingest_events`` validates ids up front
    and the cleaning job quarantines what slipped through."""

    __tablename__ = "events"
    __table_args__ = (
        Index(None, "user_id", "occurred_at"),
        Index(None, "type", "occurred_at"),
        Index(None, "impression_id"),
        Index(None, "product_id"),
    )
    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    event_id: Mapped[str] = mapped_column(Text, unique=True)
    received_at: Mapped[datetime] = _now()


class QuarantinedEvent(EventColumns, Base):
    """Events the cleaning job removed from ``events``: same columns plus the rule that caught them."""

    __tablename__ = "events_quarantine"
    __table_args__ = (Index(None, "rule"), Index(None, "report_id"))
    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    event_id: Mapped[str] = mapped_column(Text)
    received_at: Mapped[datetime]
    rule: Mapped[str] = mapped_column(Text)
    report_id: Mapped[int | None] = mapped_column(BigInteger)
    quarantined_at: Mapped[datetime] = _now()


class Feature(Base):
    __tablename__ = "features"
    entity_type: Mapped[str] = mapped_column(Text, primary_key=True)
    entity_id: Mapped[str] = mapped_column(Text, primary_key=True)
    name: Mapped[str] = mapped_column(Text, primary_key=True)
    value: Mapped[Any] = mapped_column(JSONB)
    updated_at: Mapped[datetime] = _now()


class Embedding(Base):
    __tablename__ = "embeddings"
    __table_args__ = (
        Index(
            "ix_embeddings_vector_hnsw",
            "vector",
            postgresql_using="hnsw",
            postgresql_ops={"vector": "vector_cosine_ops"},
        ),
    )
    entity_type: Mapped[str] = mapped_column(Text, primary_key=True)
    entity_id: Mapped[str] = mapped_column(Text, primary_key=True)
    model_name: Mapped[str] = mapped_column(Text, primary_key=True)
    model_version: Mapped[int] = mapped_column(Integer)
    vector: Mapped[Any] = mapped_column(Vector(EMBEDDING_DIM))
    updated_at: Mapped[datetime] = _now()


# -- recommendation lists (migration 0003) ---------------------------------------------------------------------
RECS_LIST_KINDS = ("popular", "trending", "co_view", "co_buy")


class RecsList(Base):
    """A ranked product list materialized by shared/learning/recs_lists.py: ``items`` is ``[[product_id, score],
    ...]`` best first. Keys: ``popular``/``trending`` lists are ``<window>:all`` or ``<window>:cat:<category>``;
    co-occurrence lists are keyed by the anchor product id. Serving reads one list by primary key."""

    __tablename__ = "recs_lists"
    kind: Mapped[str] = mapped_column(Text, primary_key=True)
    key: Mapped[str] = mapped_column(Text, primary_key=True)
    items: Mapped[list[Any]] = mapped_column(JSONB, nullable=False)
    updated_at: Mapped[datetime] = _now()


# a signed-out shopper's context for Recommend: the products their storefront session touched
Index("ix_events_session_id", Event.session_id)
# SearchProducts' full-text document of a product; the query must repeat this expression to use the index
PRODUCT_DOCUMENT_SQL = (  # written the way Postgres prints it back, so that autogenerate sees no difference
    "to_tsvector('english'::regconfig, (((((title || ' '::text) || COALESCE(brand, ''::text)) || ' '::text) || "
    "COALESCE(category, ''::text)) || ' '::text) || COALESCE(description, ''::text))"
)
Index("ix_products_document", text(PRODUCT_DOCUMENT_SQL), postgresql_using="gin", _table=cast(Table, Product.__table__))
# search's typo tolerance: trigram similarity on titles (the pg_trgm extension comes with migration 0003)
Index(
    "ix_products_title_trgm",
    Product.title,
    postgresql_using="gin",
    postgresql_ops={"title": "gin_trgm_ops"},
)


class ModelVersion(Base):
    """The model registry: one row per trained version, whatever became of it."""

    __tablename__ = "model_versions"
    __table_args__ = (
        UniqueConstraint("model_name", "version"),
        CheckConstraint(_in("status", MODEL_STATUSES), name="status"),
    )
    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    model_name: Mapped[str] = mapped_column(Text)
    version: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(Text, server_default="training")
    backbone: Mapped[str | None] = mapped_column(Text)
    mode: Mapped[str | None] = mapped_column(Text)
    params: Mapped[dict[str, Any]] = mapped_column(JSONB, server_default="{}", nullable=False)
    metrics: Mapped[dict[str, Any]] = mapped_column(JSONB, server_default="{}", nullable=False)
    dataset: Mapped[dict[str, Any]] = mapped_column(JSONB, server_default="{}", nullable=False)
    path: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = _now()
    published_at: Mapped[datetime | None]
    # the run record and the evaluation gate (migration 0005): the source the version was trained from, how long
    # its training took, and the gate's decision (passed, reason, challenger / champion / baseline scores)
    code_version: Mapped[str | None] = mapped_column(Text)
    train_seconds: Mapped[float | None] = mapped_column(Float)
    gate: Mapped[dict[str, Any]] = mapped_column(JSONB, server_default="{}", nullable=False)


class RetrainTrigger(Base):
    """The volume trigger's memory: when it last enqueued a retrain of a model, so that one burst of new feedback
    enqueues one retrain (the next check counts from here or from the newest version, whichever is later)."""

    __tablename__ = "retrain_triggers"
    model_name: Mapped[str] = mapped_column(Text, primary_key=True)
    enqueued_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    new_events: Mapped[int] = mapped_column(BigInteger)
    task_id: Mapped[str | None] = mapped_column(Text)


class DataQualityReport(Base):
    __tablename__ = "data_quality_reports"
    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    created_at: Mapped[datetime] = _now()
    source: Mapped[str] = mapped_column(Text)
    rows_in: Mapped[int] = mapped_column(BigInteger)
    rows_kept: Mapped[int] = mapped_column(BigInteger)
    rows_dropped: Mapped[int] = mapped_column(BigInteger)
    issues: Mapped[dict[str, Any]] = mapped_column(JSONB, server_default="{}", nullable=False)
    samples: Mapped[dict[str, Any]] = mapped_column(JSONB, server_default="{}", nullable=False)
    task_id: Mapped[str | None] = mapped_column(Text)
    # rule -> rows of this report moved back into events by ``ecomai quality undo`` (migration 0007)
    undone: Mapped[dict[str, Any]] = mapped_column(JSONB, server_default="{}", nullable=False)


# -- undoing a cleaning rule (migration 0007) ---------------------------------------------------------------------
class CleaningUndo(Base):
    """One ``ecomai quality undo RULE [--report ID]``: what it moved back from events_quarantine into events."""

    __tablename__ = "cleaning_undos"
    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    created_at: Mapped[datetime] = _now()
    rule: Mapped[str] = mapped_column(Text)
    report_id: Mapped[int | None] = mapped_column(BigInteger)  # None: every report's rows of the rule
    restored: Mapped[int] = mapped_column(BigInteger)  # rows back in events
    already_present: Mapped[int] = mapped_column(BigInteger)  # their event id was in events again: not duplicated


class CleaningExemption(Base):
    """An event a rule once caught and an undo gave back: that rule leaves it alone in later cleaning runs (other
    rules still apply) until the exemption is dropped (``ecomai quality reapply RULE``)."""

    __tablename__ = "cleaning_exemptions"
    event_id: Mapped[str] = mapped_column(Text, primary_key=True)
    rule: Mapped[str] = mapped_column(Text, primary_key=True)
    undo_id: Mapped[int] = mapped_column(BigInteger)


class Conversation(Base):
    __tablename__ = "conversations"
    __table_args__ = (Index(None, "user_id", "updated_at"),)
    conversation_id: Mapped[str] = mapped_column(Text, primary_key=True)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.user_id", ondelete="CASCADE"))
    status: Mapped[str] = mapped_column(Text, server_default="open")
    handoff: Mapped[bool] = mapped_column(Boolean, server_default="false")
    created_at: Mapped[datetime] = _now()
    updated_at: Mapped[datetime] = _now()
    # dialogue state: pending action + slots, recent turns, low-confidence streak (services/chat/dialogue.py)
    state: Mapped[dict[str, Any]] = mapped_column(JSONB, server_default="{}", nullable=False)
    version: Mapped[int] = mapped_column(Integer, server_default="0")  # bumped per turn: optimistic check
    handoff_summary: Mapped[str | None] = mapped_column(Text)


class Message(Base):
    __tablename__ = "messages"
    __table_args__ = (
        CheckConstraint(_in("role", MESSAGE_ROLES), name="role"),
        Index(None, "conversation_id", "created_at"),
    )
    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    conversation_id: Mapped[str] = mapped_column(ForeignKey("conversations.conversation_id", ondelete="CASCADE"))
    role: Mapped[str] = mapped_column(Text)
    text: Mapped[str] = mapped_column(Text)
    intent: Mapped[str | None] = mapped_column(Text)
    confidence: Mapped[float | None] = mapped_column(Float)
    created_at: Mapped[datetime] = _now()
    metadata_: Mapped[dict[str, Any]] = mapped_column("metadata", JSONB, server_default="{}", nullable=False)


class FaqEntry(Base):
    __tablename__ = "faq_entries"
    faq_id: Mapped[str] = mapped_column(Text, primary_key=True)
    question: Mapped[str] = mapped_column(Text)
    answer: Mapped[str] = mapped_column(Text)
    intent: Mapped[str | None] = mapped_column(Text)
    tags: Mapped[list[str]] = mapped_column(JSONB, server_default="[]", nullable=False)


class IntentExample(Base):
    __tablename__ = "intent_examples"
    __table_args__ = (Index(None, "intent"),)
    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    text: Mapped[str] = mapped_column(Text)
    intent: Mapped[str] = mapped_column(Text)
    source: Mapped[str] = mapped_column(Text, server_default="demo")


# -- traffic split by model version (migration 0006) -----------------------------------------------------------
TRAFFIC_ARM_STATUSES = ("active", "stopped")


class TrafficArm(Base):
    """One arm of a model's traffic split: the share of users (``percent``) a served version gets. Services choose
    an arm per user by hashing (salt, model, user) into the active arms' cumulative shares, in version order, so a
    user keeps their arm while the split stands and a growing canary (the newest version, last) keeps its users.
    Written by ``shared.learning.traffic``; no rows (or none active) = the model's one served version answers all."""

    __tablename__ = "traffic_arms"
    __table_args__ = (
        CheckConstraint(_in("status", TRAFFIC_ARM_STATUSES), name="status"),
        CheckConstraint("percent >= 0 and percent <= 100", name="percent_range"),
    )
    model_name: Mapped[str] = mapped_column(Text, primary_key=True)
    version: Mapped[int] = mapped_column(Integer, primary_key=True)
    percent: Mapped[float] = mapped_column(Float)
    status: Mapped[str] = mapped_column(Text, server_default="active")
    salt: Mapped[str] = mapped_column(Text)
    started_at: Mapped[datetime] = _now()
    stopped_at: Mapped[datetime | None]


class ServedRecommendation(Base):
    """What one Recommend/SimilarProducts answer showed and which recs_ranker version ranked it (None: a fallback
    order), so that views and purchases of those products can be credited to the version (online metrics)."""

    __tablename__ = "served_recommendations"
    __table_args__ = (Index(None, "user_id", "served_at"),)
    request_id: Mapped[str] = mapped_column(Text, primary_key=True)
    user_id: Mapped[str | None] = mapped_column(Text)  # None: an anonymous shopper
    model_version: Mapped[int | None] = mapped_column(Integer)
    product_ids: Mapped[list[str]] = mapped_column(JSONB, server_default="[]", nullable=False)
    served_at: Mapped[datetime] = _now()
