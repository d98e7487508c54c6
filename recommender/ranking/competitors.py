"""Competitor avoidance: the same item sold by another store, and same-niche stores.

Embeddings say "similar", which is not "identical": the same item is told by model
numbers and brand + title n-grams; the same niche by how alike two stores' profiles are.
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Protocol

from recommender.ranking.index import VectorIndex
from recommender.ranking.lexical import identifier_agreement, is_quantity

# Titles this alike (character trigrams) are the same item, and store profiles this alike
# are the same niche.
SAME_ITEM_TITLE_SIMILARITY = 0.6
SAME_ITEM_TITLE_SIMILARITY_SAME_BRAND = 0.4
SAME_NICHE_PROFILE_SIMILARITY = 0.9

_MODEL_TOKEN = re.compile(r"\b(?=[a-z-]*\d)(?=[\d-]*[a-z])[a-z0-9-]{3,}\b")


# Per title, kept for the titles seen most lately: a widget compares the viewed title with a
# hundred candidates, and the same partner titles come up on page after page. A title's
# trigrams take 4-7 KB, so 4,096 of them about 25 MB a process.
@lru_cache(maxsize=4096)
def _trigrams(text: str) -> frozenset[str]:
    text = f"  {re.sub(r'[^a-z0-9]+', ' ', text.lower()).strip()}  "
    return frozenset(text[i : i + 3] for i in range(len(text) - 2))


@lru_cache(maxsize=4096)
def _model_tokens(title: str) -> frozenset[str]:
    """Words of letters and digits, but not quantities: two 32GB kits are not one item."""
    return frozenset(
        token for token in _MODEL_TOKEN.findall(title.lower()) if not is_quantity(token)
    )


class Titled(Protocol):
    """A product as competitor avoidance compares one (a Product, or a ranking candidate)."""

    @property
    def title(self) -> str: ...
    @property
    def vendor(self) -> str: ...


def same_item(a: Titled, b: Titled) -> bool:
    """The same product sold by two stores."""
    tokens_a, tokens_b = _model_tokens(a.title), _model_tokens(b.title)
    if tokens_a & tokens_b:
        return True
    # Every identifier of each title is in the other, however written: references of
    # digits alone too ("2541.80.00" and "Ref. 25418000").
    if identifier_agreement(a.title, b.title) == 1:
        return True
    grams_a, grams_b = _trigrams(a.title), _trigrams(b.title)
    overlap = len(grams_a & grams_b) / max(len(grams_a | grams_b), 1)
    same_brand = bool(a.vendor) and a.vendor.lower() == b.vendor.lower()
    return overlap >= SAME_ITEM_TITLE_SIMILARITY or (
        same_brand and overlap >= SAME_ITEM_TITLE_SIMILARITY_SAME_BRAND
    )


def same_niche_stores(index: VectorIndex, *, host_id: int) -> set[int]:
    """Stores whose catalog profile is nearly the host's."""
    mine = index.store_profile(host_id)
    if mine is None:
        return set()
    same = set()
    for store_id in index.store_ids() - {host_id}:
        theirs = index.store_profile(store_id)
        if theirs is not None and float(mine @ theirs) >= SAME_NICHE_PROFILE_SIMILARITY:
            same.add(store_id)
    return same
