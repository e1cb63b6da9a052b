"""Names of event contract v1 that both validation paths share (docs/contracts.md)."""
from __future__ import annotations

EVENT_TYPES = frozenset({"search", "impression", "click", "add_to_cart", "purchase"})
# Events that carry a request_id and a query because they describe a result page.
PAGE_TYPES = frozenset({"search", "impression"})
# Events that are labels for an item; request_id is optional for them (a label
# without one is attributed to the user's latest impression of that item).
LABEL_TYPES = frozenset({"click", "add_to_cart", "purchase"})

# Keys of a clean event and of a clean impression item, in serialisation order.
CLEAN_EVENT_FIELDS = (
    "event_id", "type", "ts", "user_id", "session_id", "request_id", "query", "items",
    "item_id", "price", "quantity", "category", "brand", "device", "platform",
)
CLEAN_ITEM_FIELDS = ("item_id", "position", "price", "category", "brand")
