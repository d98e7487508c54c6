"""The demo catalogs as embedding texts (no Django: the embedding benchmark uses it too)."""

from __future__ import annotations

from recommender.ranking import embedding
from simulator.demo_shops import NICHES, catalog


def demo_product_texts(*, per_store: int | None = None) -> list[str]:
    texts = []
    for niche in NICHES:
        for product in catalog(niche)[:per_store]:
            texts.append(
                embedding.product_text(
                    title=product["title"],
                    product_type=product["product_type"],
                    category=product["category"]["full_name"],
                    tags=product["tags"],
                    vendor=product["vendor"],
                    description=product["body_html"],
                )
            )
    return texts
