"""The cleaning rules: one SQL condition each on an events row ``e`` (in the CTE ``scope``: the events being
cleaned), each counted on its own in the quality report and written into ``events_quarantine.rule``.

They run in the order of ``rules()``, each on what the previous ones left, so an event is reported under the first
rule that catches it: malformed before unknown (an over-long user id is malformed, not an unknown user), impossible
values before behaviour, bots before the finer click patterns (a bot's clicks are the bot's), exact before near
duplicates. The well-formedness rules are ``shared.store.event_rules`` read as SQL (what ingestion rejects at the
door); the others need the whole stream.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from shared.store.event_rules import (
    BOUNDS,
    bad_timestamp_sql,
    id_too_long_sql,
    missing_field_sql,
    not_an_object_sql,
    out_of_bounds_sql,
)

if TYPE_CHECKING:
    from shared.core.settings import Settings

# every column that says what happened, bar the event id, when it arrived and the free-form properties (a client's
# retry may add its own fields there): equal in all = the same event twice
CONTENT_COLUMNS = (
    "type, user_id, product_id, ad_id, impression_id, placement_id, session_id, query, conversation_id, rating, "
    "quantity, price_micros, occurred_at"
)


@dataclass(frozen=True)
class CleaningConfig:
    bot_min_clicks: int = 50  # extreme_click_rate: a user with more clicks than this ...
    bot_min_ctr: float = 0.5  # ... and a click-through rate above this is a bot
    max_events_per_minute: int = 60  # inhuman_speed: more events than this within any 60 seconds
    min_click_delay_ms: int = 500  # instant_click: people take seconds; the demo's shoppers 2-20 s
    duplicate_window_s: float = 1.0  # near_duplicate

    @classmethod
    def from_settings(cls, settings: Settings) -> CleaningConfig:
        return cls(
            bot_min_clicks=settings.cleaning_bot_min_clicks,
            bot_min_ctr=settings.cleaning_bot_min_ctr,
            max_events_per_minute=settings.cleaning_max_events_per_minute,
            min_click_delay_ms=settings.cleaning_min_click_delay_ms,
            duplicate_window_s=settings.cleaning_duplicate_window_s,
        )


@dataclass(frozen=True)
class CleaningRule:
    name: str
    description: str
    condition: str  # SQL on ``e``; may read the CTE ``scope`` and any table


def _unknown(column: str, table: str) -> str:
    return f"e.{column} is not null and not exists (select 1 from {table} t where t.{column} = e.{column})"


def rules(config: CleaningConfig | None = None) -> list[CleaningRule]:
    """Every rule, in the order they run."""
    c = config or CleaningConfig()
    separate = ("price_micros", "quantity")  # impossible prices and quantities have rules of their own
    malformed = (id_too_long_sql(), out_of_bounds_sql(*(n for n in BOUNDS if n not in separate)), not_an_object_sql())
    return [
        CleaningRule("missing_field", "no event id, an unknown type, or a field its type needs is empty",
                     missing_field_sql()),
        CleaningRule("invalid_value", "an over-long id, a rating out of range, properties not a JSON object",
                     " or ".join(f"({sql})" for sql in malformed)),
        CleaningRule("unknown_user", "names a user the shop does not have", _unknown("user_id", "users")),
        CleaningRule("unknown_product", "names a product the shop does not have", _unknown("product_id", "products")),
        CleaningRule("unknown_ad", "names an ad the shop does not have", _unknown("ad_id", "ads")),
        CleaningRule("impossible_price", "a negative price or one above the limit", out_of_bounds_sql("price_micros")),
        CleaningRule("impossible_quantity", "a negative quantity or above the limit", out_of_bounds_sql("quantity")),
        CleaningRule("bad_timestamp", "in the future beyond clock skew, or before 2000", bad_timestamp_sql()),
        CleaningRule(
            "extreme_click_rate",
            f"every event of a user with more than {c.bot_min_clicks} clicks and a click rate above {c.bot_min_ctr}",
            f"""e.user_id in (
                select user_id from scope where type in ('impression', 'click') and user_id is not null
                group by user_id
                having count(*) filter (where type = 'click') > {c.bot_min_clicks}
                   and count(*) filter (where type = 'click')
                       > {c.bot_min_ctr} * greatest(count(*) filter (where type = 'impression'), 1))""",
        ),
        CleaningRule(
            "inhuman_speed",
            f"every event of a user with more than {c.max_events_per_minute} events within 60 seconds",
            f"""e.user_id in (
                select user_id from (
                    select user_id, count(*) over (partition by user_id order by occurred_at
                        range between interval '60 seconds' preceding and current row) as burst
                    from scope where user_id is not null) b
                where burst > {c.max_events_per_minute})""",
        ),
        CleaningRule(
            "instant_click",
            f"a click sooner than {c.min_click_delay_ms} ms after its impression, or before it (injected clicks)",
            f"""e.type = 'click'
            and exists (select 1 from events i where i.type = 'impression' and i.impression_id = e.impression_id)
            and not exists (
                select 1 from events i where i.type = 'impression' and i.impression_id = e.impression_id
                and i.occurred_at <= e.occurred_at - interval '{c.min_click_delay_ms} milliseconds')""",
        ),
        CleaningRule(
            "exact_duplicate",
            "the same event again under another event id (the first copy stays)",
            f"""e.id in (
                select id from (
                    select id, row_number() over (partition by {CONTENT_COLUMNS} order by id) as copy
                    from scope) d
                where copy > 1)""",
        ),
        CleaningRule(
            "near_duplicate",
            f"the same user, type and item again within {c.duplicate_window_s} s (the first stays)",
            f"""e.id in (
                select id from (
                    select id, occurred_at - lag(occurred_at) over (
                        partition by user_id, type, product_id, ad_id, impression_id order by occurred_at, id) as gap
                    from scope) g
                where gap < interval '{c.duplicate_window_s} seconds')""",
        ),
        CleaningRule(
            "click_without_impression",
            "a click whose impression is not among the events",
            """e.type = 'click' and not exists (
                select 1 from events i where i.type = 'impression' and i.impression_id = e.impression_id)""",
        ),
    ]  # fmt: skip


RULE_NAMES = tuple(rule.name for rule in rules())
