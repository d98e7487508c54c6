"""Attacks on the exchange, played over real HTTP through the simulator's signed app proxy
against the live app and PostgreSQL. Each attack must move no credits beyond what the
published rules allow; the honest path must move exactly the published amounts."""

from __future__ import annotations

from decimal import Decimal

import httpx
import pytest

from recommender import runtime
from recommender.catalog import index_events
from recommender.catalog import sync as catalog_sync
from recommender.exchange import ledger, review, rules
from recommender.models import Click, LedgerEntry, Product, WidgetSettings
from stores import tasks as store_tasks
from stores.models import Store
from tests import shoppers
from tests.conftest import small_catalog, wait_until_clicks_settled

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def exchange(simulator, live_server, settings, tmp_path):
    """Three installed stores (alpha hosts, beta and gamma are partners), synced, indexed."""
    settings.SHOPIFY_APP_URL = live_server.url
    settings.RECOMMENDER_EMBEDDER = "hash"
    settings.RECOMMENDER_EMBED_QUIET_SECONDS = 0
    settings.RECOMMENDER_INDEX_DIR = tmp_path / "index"
    settings.RECOMMENDER_INDEX_POLL_SECONDS = 0.2
    settings.RECOMMENDER_STATE_TTL_SECONDS = 0
    settings.RECOMMENDER_SETTLE_CLICKS_BEHIND = True  # as in production: its own thread
    settings.RECOMMENDER_RELEVANCE_FLOOR = (
        -1.0
    )  # every partner item qualifies: attacks, not relevance
    runtime.reset()
    world = simulator.world
    world.app.app_url = live_server.url
    world.add_shop("gamma", small_catalog("gamma", ["Burr Grinder Deluxe", "Milk Frother"]))
    for handle in ("alpha", "beta", "gamma"):  # enough products for many distinct targets
        for n in range(6):
            world.upsert_product(handle, {
                "title": f"{handle.title()} item {n}", "handle": f"item-{n}",
                "variants": [{"price": "12.00", "inventory_quantity": 4}],
            })  # fmt: skip
    stores = {}
    for handle in ("alpha", "beta", "gamma"):
        world.install(simulator.shop(handle))
        response = httpx.get(
            live_server.url + "/", params=simulator.embedded_query(handle), timeout=10
        )
        assert response.status_code == 200
        store = Store.objects.get(shop_domain=f"{handle}.myshopify.com")
        store_tasks.after_install(store.pk)
        catalog_sync.sync_catalog(store)
        stores[handle] = store
    index_events.rebuild_index()
    for store in stores.values():
        WidgetSettings.objects.filter(store=store).update(own_share=0)
    stores["viewed"] = next(iter(simulator.shop("alpha").products))
    stores["products"] = list(simulator.shop("alpha").products)
    return stores


def balances(stores) -> dict[str, Decimal]:
    return {name: ledger.balance(stores[name]) for name in ("alpha", "beta", "gamma")}


def test_honest_shopper_who_sees_and_clicks_earns_the_host_exactly_the_published_amount(
    simulator, exchange
):
    before = balances(exchange)

    statuses = shoppers.honest_view_and_click(simulator.url, "alpha", exchange["viewed"])
    wait_until_clicks_settled()

    assert statuses == [302]
    after = balances(exchange)
    assert after["alpha"] - before["alpha"] == rules.EARN_PER_CLICK
    partner = "beta" if after["beta"] != before["beta"] else "gamma"
    assert after[partner] - before[partner] == -rules.SPEND_PER_CLICK


def test_harvested_tokens_without_a_viewable_impression_earn_nothing(simulator, exchange):
    before = balances(exchange)

    statuses = shoppers.harvest_without_viewing(simulator.url, "alpha", exchange["viewed"])
    wait_until_clicks_settled()

    assert set(statuses) == {302}  # the shopper still lands on the product
    assert balances(exchange) == before
    assert Click.objects.filter(billable=False).count() == len(statuses)
    assert set(Click.objects.values_list("reason", flat=True)) == {"no viewable impression"}


def test_rotating_the_user_agent_after_the_fetch_makes_no_new_visitor(simulator, exchange):
    before = balances(exchange)

    statuses = shoppers.rotate_agents_after_one_view(simulator.url, "alpha", exchange["viewed"])
    wait_until_clicks_settled()

    # One viewable impression, one billable click: exactly the honest amount, once.
    assert set(statuses) == {302}
    assert ledger.balance(exchange["alpha"]) - before["alpha"] == rules.EARN_PER_CLICK
    assert Click.objects.filter(billable=True).count() == 1


def test_spoofed_forwarded_addresses_are_one_address_and_hit_its_limit(simulator, exchange):
    before = balances(exchange)
    rounds = rules.BILLABLE_CLICKS_PER_IP_PER_HOUR + 5

    shoppers.spoof_forwarded_addresses(simulator.url, "alpha", exchange["viewed"], rounds=rounds)
    wait_until_clicks_settled()

    # Shopify's proxy appends the real address, the hop we trust: one address throughout.
    billable = Click.objects.filter(billable=True)
    assert len(set(Click.objects.values_list("ip_hash", flat=True))) == 1
    assert billable.count() <= rules.BILLABLE_CLICKS_PER_IP_PER_HOUR
    earned = ledger.balance(exchange["alpha"]) - before["alpha"]
    assert earned <= review.CLICKS_BEFORE_A_HOLD * rules.EARN_PER_CLICK


def test_a_bot_rotating_real_addresses_has_its_earnings_held_for_review(simulator, exchange):
    before = balances(exchange)

    shoppers.bot_rotating_real_addresses(simulator.url, "alpha", exchange["viewed"], rounds=15)
    wait_until_clicks_settled()

    earned = ledger.balance(exchange["alpha"]) - before["alpha"]
    held = ledger.held_earnings(exchange["alpha"])
    # Every view clicked: far above any shopper's rate. Review holds new earnings once the
    # smoothed click-through rate says so; what was earned before stays within that bound.
    assert held > 0
    assert earned + held == Click.objects.filter(billable=True).count() * rules.EARN_PER_CLICK
    assert earned <= review.CLICKS_BEFORE_A_HOLD * rules.EARN_PER_CLICK
    assert review.under_review(exchange["alpha"].pk)


def test_padding_views_to_hide_the_rate_is_caught_by_the_address_pattern(simulator, exchange):
    before = balances(exchange)

    statuses = shoppers.pad_views_from_one_address(
        simulator.url, "alpha", exchange["products"], views=50, clicks=12
    )
    wait_until_clicks_settled()

    assert statuses == [302] * 12
    billable = Click.objects.filter(billable=True).count()
    assert billable > review.CLICKS_BEFORE_A_HOLD  # distinct products: the limits let them by
    earned = ledger.balance(exchange["alpha"]) - before["alpha"]
    assert billable <= rules.BILLABLE_CLICKS_PER_IP_PER_HOUR
    assert earned <= review.CLICKS_BEFORE_A_HOLD * rules.EARN_PER_CLICK
    assert ledger.held_earnings(exchange["alpha"]) == (billable * rules.EARN_PER_CLICK) - earned
    # Held clicks charge nobody: partners paid only for what was earned.
    charged = sum(before[p] - ledger.balance(exchange[p]) for p in ("beta", "gamma"))
    assert charged == (earned / rules.EARN_PER_CLICK) * rules.SPEND_PER_CLICK


def test_a_bot_stopping_each_address_where_it_turns_heavy_is_held_by_its_rate(simulator, exchange):
    """The address pattern holds an address's clicks from its fifth on; a bot making just
    four from each address, every view clicked, must still be held by its rate."""
    before = balances(exchange)

    statuses = shoppers.few_clicks_from_each_of_many_addresses(
        simulator.url, "alpha", exchange["products"], addresses=8,
        per_address=review.HEAVY_ADDRESS_CLICKS,
    )  # fmt: skip
    wait_until_clicks_settled()

    assert set(statuses) == {302}
    billable = Click.objects.filter(billable=True).count()
    assert billable > 2 * review.CLICKS_BEFORE_A_HOLD  # the limits let them by
    earned = ledger.balance(exchange["alpha"]) - before["alpha"]
    assert earned <= review.CLICKS_BEFORE_A_HOLD * rules.EARN_PER_CLICK
    assert ledger.held_earnings(exchange["alpha"]) == billable * rules.EARN_PER_CLICK - earned
    assert review.under_review(exchange["alpha"].pk)


def test_views_reported_here_and_clicked_from_elsewhere_earn_nothing(simulator, exchange):
    before = balances(exchange)

    statuses = shoppers.view_here_click_elsewhere(
        simulator.url, "alpha", exchange["viewed"], views=8
    )
    wait_until_clicks_settled()

    # Each view was real, but no click came from the shopper it was shown to.
    assert statuses == [302] * 8  # the clickers still land on the products
    assert balances(exchange) == before
    assert set(Click.objects.values_list("reason", flat=True)) == {
        "not the shopper it was shown to"
    }


def test_a_billed_token_replayed_earns_nothing_more(simulator, exchange):
    before = balances(exchange)

    statuses = shoppers.replay_a_billed_token(simulator.url, "alpha", exchange["viewed"])
    wait_until_clicks_settled()

    assert statuses == [302] * 6
    assert ledger.balance(exchange["alpha"]) - before["alpha"] == rules.EARN_PER_CLICK
    assert Click.objects.filter(billable=True).count() == 1


def test_sixteen_concurrent_clicks_on_one_impression_bill_exactly_once(simulator, exchange):
    before = balances(exchange)

    statuses = shoppers.concurrent_clicks_on_one_view(simulator.url, "alpha", exchange["viewed"])
    wait_until_clicks_settled()

    assert statuses == [302] * 16
    assert Click.objects.filter(billable=True).count() == 1
    assert ledger.balance(exchange["alpha"]) - before["alpha"] == rules.EARN_PER_CLICK


def test_tokens_issued_before_the_partner_uninstalled_earn_nothing(simulator, exchange):
    before = balances(exchange)

    def partners_uninstall() -> None:
        Store.objects.filter(pk__in=[exchange["beta"].pk, exchange["gamma"].pk]).update(
            status=Store.Status.UNINSTALLED
        )

    shoppers.view_then(simulator.url, "alpha", exchange["viewed"], partners_uninstall)
    wait_until_clicks_settled()

    assert balances(exchange) == before
    assert set(Click.objects.values_list("reason", flat=True)) == {"partner not active"}


def test_tokens_issued_before_a_block_earn_nothing_in_either_direction(simulator, exchange):
    before = balances(exchange)

    def blocks_both_ways() -> None:  # alpha blocks beta; gamma blocks alpha
        WidgetSettings.objects.get(store=exchange["alpha"]).blocked_stores.add(exchange["beta"])
        WidgetSettings.objects.get(store=exchange["gamma"]).blocked_stores.add(exchange["alpha"])

    shoppers.view_then(simulator.url, "alpha", exchange["viewed"], blocks_both_ways)
    wait_until_clicks_settled()

    assert balances(exchange) == before
    assert set(Click.objects.values_list("reason", flat=True)) == {"blocked"}


@pytest.mark.parametrize(
    "taken_out", [{"opted_out": True}, {"eligible": False, "ineligible_reason": "out of stock"}]
)
def test_tokens_issued_before_the_partner_took_its_products_out_earn_nothing(
    simulator, exchange, taken_out
):
    """Links kept from a view and clicked once the partner kept the products off the
    exchange (or they stopped being shown: sold out, a draft) charge the partner nothing;
    the shopper still gets to the product."""
    before = balances(exchange)

    def partners_take_their_products_out() -> None:
        Product.objects.filter(store__in=[exchange["beta"], exchange["gamma"]]).update(**taken_out)

    statuses = shoppers.view_then(
        simulator.url, "alpha", exchange["viewed"], partners_take_their_products_out
    )
    wait_until_clicks_settled()

    assert statuses and set(statuses) == {302}
    assert balances(exchange) == before
    assert set(Click.objects.values_list("reason", flat=True)) == {"product withdrawn"}


def test_tokens_issued_before_the_host_switched_its_widget_off_earn_nothing(simulator, exchange):
    """Switched off, a store is out of the exchange: it neither pays nor earns, even for
    rows shown before."""
    before = balances(exchange)

    def host_switches_off() -> None:
        WidgetSettings.objects.filter(store=exchange["alpha"]).update(enabled=False)

    statuses = shoppers.view_then(simulator.url, "alpha", exchange["viewed"], host_switches_off)
    wait_until_clicks_settled()

    assert statuses and set(statuses) == {302}
    assert balances(exchange) == before
    assert set(Click.objects.values_list("reason", flat=True)) == {"store not participating"}


def test_a_partner_that_cannot_pay_is_not_charged_and_never_goes_below_zero(simulator, exchange):
    def partners_spend_down_to_half_a_click() -> None:
        for partner in ("beta", "gamma"):
            LedgerEntry.objects.create(
                store=exchange[partner], kind=LedgerEntry.Kind.SPEND,
                amount=-(rules.STARTER_GRANT - Decimal("0.50")),
            )  # fmt: skip

    statuses = shoppers.view_then(
        simulator.url, "alpha", exchange["viewed"], partners_spend_down_to_half_a_click
    )
    wait_until_clicks_settled()

    assert set(statuses) == {302}  # the shopper still gets there
    assert ledger.balance(exchange["alpha"]) == rules.STARTER_GRANT
    assert ledger.balance(exchange["beta"]) == ledger.balance(exchange["gamma"]) == Decimal("0.50")
    assert set(Click.objects.values_list("reason", flat=True)) == {"partner cannot pay"}


def test_a_development_store_gets_no_starter_grant(simulator, live_server, settings):
    settings.SHOPIFY_APP_URL = live_server.url
    simulator.world.app.app_url = live_server.url
    simulator.world.add_shop(
        "devshop", {**small_catalog("devshop", ["Test Product"]), "plan": "Development"}
    )
    simulator.world.add_shop("payer", {**small_catalog("payer", ["Paid Product"]), "plan": "Basic"})
    grants = {}
    for handle in ("devshop", "payer"):
        simulator.world.install(simulator.shop(handle))
        httpx.get(live_server.url + "/", params=simulator.embedded_query(handle), timeout=10)
        store = Store.objects.get(shop_domain=f"{handle}.myshopify.com")
        store_tasks.after_install(store.pk)
        store_tasks.after_install(store.pk)  # a reinstall: still once per shop domain
        grants[handle] = ledger.balance(store)

    assert grants == {"devshop": Decimal("0"), "payer": rules.STARTER_GRANT}
