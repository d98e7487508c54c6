"""The Admin GraphQL client against Shopify's failure modes, over real HTTP."""

from __future__ import annotations

import pytest

from stores import services, shopify

pytestmark = pytest.mark.django_db


def test_throttled_on_http_200_raises_with_the_wait_the_cost_data_implies(simulator, install):
    store = install("alpha")
    simulator.fault("alpha", "graphql", "throttled")

    with pytest.raises(shopify.ShopifyThrottled) as raised:
        services.admin_graphql(store, "{ shop { name } }")

    # 50 points requested, 0 available, 100 restored per second.
    assert raised.value.retry_after == pytest.approx(0.5)
    assert raised.value.status == 200


def test_429_with_retry_after_is_retried_by_the_client(simulator, install):
    store = install("alpha")
    simulator.fault("alpha", "graphql", "429", count=1)

    response = services.admin_graphql(store, "{ shop { name } }")

    assert response.data["shop"]["name"] == "Alpha"


def test_outage_raises_unavailable_after_retries(simulator, install):
    store = install("alpha")
    simulator.fault("alpha", "graphql", "503", count=3)

    with pytest.raises(shopify.ShopifyUnavailable):
        services.admin_graphql(store, "{ shop { name } }")
    assert simulator.shop("alpha").faults.pop("graphql") is None  # all three were used


def test_malformed_json_is_an_error_not_an_empty_success(simulator, install):
    store = install("alpha")
    simulator.fault("alpha", "graphql", "malformed")

    with pytest.raises(shopify.ShopifyUnavailable, match="malformed"):
        services.admin_graphql(store, "{ shop { name } }")


def test_query_over_the_single_query_cost_limit_is_reported(simulator, install):
    store = install("alpha")
    simulator.world.bucket_size = 100

    with pytest.raises(shopify.ShopifyError, match="exceeds the single query max cost"):
        services.admin_graphql(store, "{ products(first: 200) { nodes { id category { name } } } }")


def test_cost_extensions_report_the_leaky_bucket(simulator, install):
    store = install("alpha")

    response = services.admin_graphql(store, "{ products(first: 10) { nodes { id title } } }")

    status = response.throttle_status
    assert response.extensions["cost"]["requestedQueryCost"] == 2 + 10 * 1
    assert status["maximumAvailable"] == simulator.world.bucket_size
    assert status["currentlyAvailable"] <= simulator.world.bucket_size - 12 + 1


def test_throttle_wait_uses_restore_rate():
    cost = {"throttleStatus": {"currentlyAvailable": 100, "restoreRate": 50}}

    assert shopify.throttle_wait(cost, next_cost=300) == 4.0
    assert shopify.throttle_wait(cost, next_cost=80) == 0.0
