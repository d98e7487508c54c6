"""Signed tokens the widget carries: one per partner link, one per rendered row.

Both are bound to the page view they were served in (the impression id). The impression
token also names the visitor it was served to (salted hashes of address and agent at that
moment): a view counts only when that visitor reports it, and a click bills only when the
visitor who makes it is one who saw the row (exchange.clicks), so the click token needs
no visitor of its own."""

from __future__ import annotations

import base64
import functools
import hmac
import json
import re
import secrets
import time
from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from django.conf import settings
from django.core import signing

from recommender.exchange import macs, rules
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
) -> str:
    payload = {
        "t": secrets.token_hex(8),
        "i": impression_id,
        "s": source_store_id,
        "d": target_store_id,
        "p": target_product_id,
    }
    return seal(payload, purpose=_CLICK_SALT)


def read_click_token(token: str) -> ClickToken:
    try:
        data = unseal(token, purpose=_CLICK_SALT, max_age=rules.CLICK_TOKEN_MAX_AGE.total_seconds())
    except signing.SignatureExpired:
        raise InvalidClickToken("expired") from None
    except signing.BadSignature:
        raise InvalidClickToken("tampered") from None
    return _click_token_from(data)


def read_click_token_unchecked_age(token: str) -> ClickToken:
    """A token whose signature is good but which is too old to bill: where it points is
    still trustworthy (an old link should still reach the product)."""
    try:
        return _click_token_from(unseal(token, purpose=_CLICK_SALT))
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
    return seal(payload, purpose=_IMPRESSION_SALT)


def read_impression(raw: str) -> dict[str, Any] | None:
    """The signed impression the widget sends back, or None when forged or too old."""
    try:
        data = unseal(raw, purpose=_IMPRESSION_SALT, max_age=IMPRESSION_TOKEN_MAX_AGE_SECONDS)
    except signing.BadSignature:
        return None
    return data if isinstance(data, dict) else None


# --- sealing ---------------------------------------------------------------------------------
# Every widget response carries four seals (three click tokens and the impression) and every
# click reads one, so they are leaner than django.core.signing's general format: compact JSON
# with its issue time, then an HMAC-SHA256 under a key derived once per purpose from
# SECRET_KEY (SECRET_KEY_FALLBACKS still open old ones), both base64url. Seals made in
# django.core.signing's format before (their parts are joined by ":", which base64url never
# contains) are still opened that way with the same purpose as salt: click references live
# seven days (attribution).
_ISSUED = "_"  # the payload key holding the issue time (whole seconds)
_COMPACT = json.JSONEncoder(separators=(",", ":"))


def seal(payload: dict[str, Any], *, purpose: str, private: bool = False) -> str:
    """``private``: for a seal that leaves the shopper's browser for a third party's hands
    (the order reference a partner's URLs carry), encrypted as well (AES-GCM under a key
    derived for the purpose): what it holds is ours alone to read."""
    data = _COMPACT.encode({**payload, _ISSUED: int(time.time())}).encode()
    if private:
        # Padded (JSON reads past trailing spaces): the length says nothing of how many
        # digits the payload's numbers have.
        data = data.ljust(-(-len(data) // _PRIVATE_BLOCK) * _PRIVATE_BLOCK)
        nonce = secrets.token_bytes(12)
        sealed = _cipher(settings.SECRET_KEY, purpose).encrypt(nonce, data, None)
        return _PRIVATE + _b64(nonce + sealed)
    body = _b64(data)
    return f"{body}.{_b64(_mac(settings.SECRET_KEY, purpose, body))}"


def unseal(token: str, *, purpose: str, max_age: float | None = None) -> Any:
    """The payload of a seal made for ``purpose``; signing.BadSignature when it was not made
    by us for that purpose, signing.SignatureExpired when older than ``max_age`` seconds."""
    if ":" in token:
        return signing.loads(token, salt=purpose, max_age=max_age)
    keys = (settings.SECRET_KEY, *settings.SECRET_KEY_FALLBACKS)
    if token.startswith(_PRIVATE):
        raw = _unb64(token[len(_PRIVATE) :])
        data = next((opened for key in keys if (opened := _opened(raw, key, purpose))), None)
        if data is None:
            raise signing.BadSignature("seal does not match")
    else:
        body, _, mac = token.rpartition(".")
        given = mac.encode("utf-8", errors="replace")
        if not body or not any(
            hmac.compare_digest(given, _b64(_mac(key, purpose, body)).encode()) for key in keys
        ):
            raise signing.BadSignature("seal does not match")
        data = _unb64(body)
    try:
        data = json.loads(data)
    except ValueError:  # a key we signed with never signs malformed JSON; still, refuse
        raise signing.BadSignature("seal is not readable") from None
    issued = data.pop(_ISSUED, None) if isinstance(data, dict) else None
    if not isinstance(issued, int):
        raise signing.BadSignature("seal has no issue time")
    if max_age is not None and time.time() - issued > max_age:
        raise signing.SignatureExpired("seal is too old")
    return data


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    """Strict: a character outside base64url is refused, not skipped, so no two strings
    open as one seal."""
    if not _BASE64URL.fullmatch(text):
        raise signing.BadSignature("seal is not readable")
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except ValueError:  # binascii.Error among them: a length no encoding gives
        raise signing.BadSignature("seal is not readable") from None


_BASE64URL = re.compile(r"[A-Za-z0-9_-]*")


# A private seal's first character: neither base64url nor django.core.signing writes it,
# and URLs carry it as it is (RFC 3986 unreserved).
_PRIVATE = "~"
_PRIVATE_BLOCK = 64  # a private seal's payload is padded to a multiple of this


@functools.lru_cache(maxsize=16)
def _cipher(secret: str, purpose: str) -> AESGCM:
    return AESGCM(macs.derived_key(secret, f"interlayer.private-seal:{purpose}"))


def _opened(raw: bytes, secret: str, purpose: str) -> bytes | None:
    """The plaintext of a private seal under ``secret``, or None when it was not sealed
    with that key for ``purpose`` (or is cut short)."""
    if len(raw) < 12 + 16:
        return None
    try:
        return _cipher(secret, purpose).decrypt(raw[:12], raw[12:], None)
    except InvalidTag:
        return None


def _mac(secret: str, purpose: str, body: str) -> bytes:
    return macs.derived(secret, f"interlayer.seal:{purpose}").digest(body.encode())
