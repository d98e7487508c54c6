"""After shop/redact nothing of the shop is left: the database and the index files on disk
are read back to prove it (partners keep only the ledger entries they need to audit)."""

from __future__ import annotations

import numpy as np
import pytest

from recommender.catalog import index_events
from recommender.catalog import sync as catalog_sync
from recommender.exchange import ledger
from recommender.models import (
    Click,
    Impression,
    IndexEvent,
    PendingOptOut,
    Product,
    SettingsChange,
)
from recommender.ranking.lexical import LexicalIndex
from stores import tasks as store_tasks
from stores import webhooks
from stores.models import Store
from tests.stores.test_webhooks import post_webhook

pytestmark = pytest.mark.django_db


def test_redaction_leaves_nothing_of_the_shop_in_the_database_or_the_index_files(
    client, simulator, install, settings, tmp_path, django_capture_on_commit_callbacks
):
    settings.RECOMMENDER_EMBEDDER = "hash"
    settings.RECOMMENDER_INDEX_DIR = tmp_path / "index"
    gone, partner = install("alpha"), install("beta")
    for store in (gone, partner):
        store_tasks.after_install(store.pk)
        catalog_sync.sync_catalog(store)
    for _ in range(3):  # several published versions, each holding alpha's vectors
        index_events.rebuild_index()
    SettingsChange.objects.create(store=gone, actor="42", changes={"title": ["a", "Secret"]})
    PendingOptOut.objects.create(store=gone, shopify_id=99, title="Secret Launch")
    Impression.objects.create(store=gone, impression_id="imp", visitor_hash="v", ip_hash="ip")
    click = Click.objects.create(
        source_store=gone, target_store=partner, target_product_id=1, impression_id="imp",
        token_id="t", visitor_hash="visitor", ip_hash="address", billable=True,
        reason="billable", user_agent="Mozilla/5.0 (Shopper's laptop)",
    )  # fmt: skip
    ledger.credit_click(click, held=False)
    alpha_products = set(Product.objects.filter(store=gone).values_list("pk", flat=True))
    assert alpha_products

    post_webhook(client, "app/uninstalled", {"id": 1}, event_id="u1")
    post_webhook(client, "shop/redact", {"shop_domain": gone.shop_domain}, event_id="r1")
    with django_capture_on_commit_callbacks(execute=True):
        webhooks.process_pending()

    assert Store.objects.get(pk=gone.pk).status == Store.Status.REDACTED
    assert not Product.objects.filter(store=gone).exists()
    assert not IndexEvent.objects.filter(store_id=gone.pk).exists()
    assert not SettingsChange.objects.filter(store=gone).exists()
    assert not PendingOptOut.objects.filter(store=gone).exists()
    assert not Impression.objects.filter(store=gone).exists()
    kept = Click.objects.get(pk=click.pk)  # the partner's ledger still points at it
    assert (kept.user_agent, kept.visitor_hash, kept.ip_hash) == ("", "", "")
    versions = [p for p in (tmp_path / "index").iterdir() if p.is_dir()]
    assert versions
    for version in versions:
        stores, products = np.load(version / "stores.npy"), np.load(version / "products.npy")
        assert gone.pk not in set(stores.tolist()), version.name
        assert not alpha_products & set(products.tolist())
        # The lexical rows (title words) are the labels' rows and no others.
        assert len(LexicalIndex.load(version)) == len(products)
