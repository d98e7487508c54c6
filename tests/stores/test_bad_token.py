"""A token that cannot be decrypted (a key dropped during rotation) stays that store's
problem: its storefront keeps working, reconciliation marks it for re-authorisation and goes
on with the other stores, and the next embedded load repairs it."""

from __future__ import annotations

import pytest
from django.db import connection

from stores import services
from stores.models import Store
from tests.recommender.test_storefront_endpoints import proxied

pytestmark = pytest.mark.django_db


def corrupt_tokens(store: Store) -> None:
    """Ciphertext no configured key opens, written as a lost key would leave it."""
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {Store._meta.db_table} SET access_token = %s, refresh_token = %s WHERE id = %s",  # noqa: S608 - table name from the model
            ["gAAAAABnot-a-token-of-ours", "gAAAAABnor-this-one", store.pk],
        )


def test_an_undecryptable_token_isolates_to_its_store(client, simulator, install):
    broken, healthy = install("alpha"), install("beta")
    corrupt_tokens(broken)

    widget = client.get(proxied("recommendations", shop=broken.shop_domain))
    checked = services.reconcile_installs()

    assert widget.status_code == 200
    assert checked == 2
    assert Store.objects.get(pk=broken.pk).status == Store.Status.NEEDS_REAUTH
    assert Store.objects.get(pk=healthy.pk).status == Store.Status.ACTIVE


def test_the_next_embedded_load_repairs_a_store_whose_token_was_lost(client, simulator, install):
    store = install("alpha")
    corrupt_tokens(store)

    response = client.get("/", simulator.embedded_query("alpha"))

    assert response.status_code == 200
    repaired = Store.objects.get(pk=store.pk)
    assert repaired.status == Store.Status.ACTIVE and repaired.access_token
