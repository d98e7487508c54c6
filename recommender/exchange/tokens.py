"""Signed tokens the widget carries: one per partner link, one per rendered row.

Both are bound to the page view they were served in (the impression id) and to the visitor
they were served to (salted hashes of address and agent at that moment, current and
previous salt period): what a later request says about itself changes neither."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Any

from django.core import signing

from recommender.exchange import rules
from recommender.exchange.rules import Visitor

_CLICK_SALT = "interlayer.click"
_IMPRESSION_SALT = "interlayer.impression"
IMPRESSION_TOKEN_MAX_AGE_SECONDS = 6 * 3600


@dataclass(frozen=True)
class ClickToken:
    token_id: str
    impression_id: str
    source_store_id: int
    target_store_id: int
    target_product_id: int  # Shopify product id
    visitor: Visitor | None  # None for a token minted before tokens carried it


class InvalidClickToken(Exception):
    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


def issue_click_token(
    *,
    impression_id: str,
    source_store_id: int,
    target_store_id: int,
    target_product_id: int,
    visitor: Visitor,
) -> str:
    payload = {
        "t": secrets.token_hex(8),
        "i": impression_id,
        "s": source_store_id,
        "d": target_store_id,
        "p": target_product_id,
        "v": visitor.current,
        "w": visitor.previous,
    }
    return signing.dumps(payload, salt=_CLICK_SALT, compress=False)


def read_click_token(token: str) -> ClickToken:
    try:
        data = signing.loads(
            token, salt=_CLICK_SALT, max_age=rules.CLICK_TOKEN_MAX_AGE.total_seconds()
        )
    except signing.SignatureExpired:
        raise InvalidClickToken("expired") from None
    except signing.BadSignature:
        raise InvalidClickToken("tampered") from None
    return _click_token_from(data)


def read_click_token_unchecked_age(token: str) -> ClickToken:
    """A token whose signature is good but which is too old to bill: where it points is
    still trustworthy (an old link should still reach the product)."""
    try:
        return _click_token_from(signing.loads(token, salt=_CLICK_SALT))
    except signing.BadSignature:
        raise InvalidClickToken("tampered") from None


def _click_token_from(data: Any) -> ClickToken:
    try:
        return ClickToken(
            token_id=str(data["t"]),
            impression_id=str(data["i"]),
            source_store_id=int(data["s"]),
            target_store_id=int(data["d"]),
            target_product_id=int(data["p"]),
            visitor=Visitor(current=str(data["v"]), previous=str(data["w"]))
            if "v" in data and "w" in data
            else None,
        )
    except (KeyError, TypeError, ValueError):
        raise InvalidClickToken("tampered") from None


def sign_impression(
    *,
    store_id: int,
    impression_id: str,
    items: int,
    partner_items: int,
    visitor: Visitor,
    page_cluster: str = "",
    shown: list[tuple[int, int]] | None = None,
) -> str:
    """``page_cluster`` and ``shown`` (partner [store id, Shopify product id] pairs) are for
    the learner: signed, so a beacon cannot teach it items it was never shown."""
    payload = {
        "s": store_id,
        "i": impression_id,
        "n": items,
        "p": partner_items,
        "v": visitor.current,
        "c": page_cluster,
        "t": [list(target) for target in shown or []],
    }
    return signing.dumps(payload, salt=_IMPRESSION_SALT)


def read_impression(raw: str) -> dict[str, Any] | None:
    """The signed impression the widget sends back, or None when forged or too old."""
    try:
        data = signing.loads(raw, salt=_IMPRESSION_SALT, max_age=IMPRESSION_TOKEN_MAX_AGE_SECONDS)
    except signing.BadSignature:
        return None
    return data if isinstance(data, dict) else None
