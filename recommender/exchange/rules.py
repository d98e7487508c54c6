"""What merchants are promised, in one place (published in the README and on the settings
page from ``RULES_IN_WORDS``). ``clicks``, ``impressions``, ``review`` and ``ledger`` apply
these numbers; none of them defines its own.
"""

from __future__ import annotations

import ipaddress
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from functools import lru_cache

from crawlerdetect import CrawlerDetect, crawlerdetect
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone

from recommender import runtime
from recommender.exchange import macs
from recommender.models import CLICK_VOIDED, VisitorSalt
from stores.models import Store

# --- credits ------------------------------------------------------------------------------
STARTER_GRANT = Decimal("25.00")
EARN_PER_CLICK = Decimal("0.80")
SPEND_PER_CLICK = Decimal("1.00")
# The reason a billable click carries while its earning waits for review.
HELD_FOR_REVIEW = "held for review"
VOIDED_IN_REVIEW = CLICK_VOIDED  # a held click an operator voided: never billable
# The clicks the rules judged billable when they were settled, which review and every limit
# count: billable ones (paid or held), and held ones an operator voided since (a script
# whose clicks were voided does not start its day afresh). Queried apart, each on partial
# indexes of its own.
JUDGED_BILLABLE = (Q(billable=True), Q(reason=VOIDED_IN_REVIEW))
# Shopify plans whose shops pay Shopify (ShopPlan.publicDisplayName): only these get the
# starter grant, so throwaway development, trial and sandbox shops cannot farm credits.
PAYING_PLANS = frozenset(
    {"Basic", "Grow", "Advanced", "Plus", "Starter", "Retail", "Lite", "Agentic",
     "Agentic Enterprise", "Shop Component"}
)  # fmt: skip

# --- what makes a click billable ------------------------------------------------------------
CLICK_TOKEN_MAX_AGE = timedelta(hours=2)
DEDUPE_WINDOW = timedelta(hours=24)
# Billable clicks allowed per hour; beyond them clicks are recorded, not billed. The IP
# limit is the one a script cannot rotate away without many real addresses.
BILLABLE_CLICKS_PER_VISITOR_PER_HOUR = 3
BILLABLE_CLICKS_PER_IP_PER_HOUR = 10
BILLABLE_CLICKS_PER_IP_PER_DAY = 30
BILLABLE_CLICKS_PER_SOURCE_STORE_PER_HOUR = 600
# Per IPv6 site (a /48) and sending store, and per site and receiving store: a /48 holds
# 65,536 /64s, each an address of its own to the limits above, and one is had for free
# from a tunnel broker. Counted per store, since a mobile network's phones can share a
# /48, and their clicks spread over the stores they shop at, while a script's earn its
# own store (or charge the one partner it means to drain, through many stores' widgets).
BILLABLE_CLICKS_PER_SITE_PER_STORE_PER_HOUR = 20
BILLABLE_CLICKS_PER_SITE_PER_STORE_PER_DAY = 60
# Viewable impressions counted per 10 minutes; beyond them they are dropped.
IMPRESSIONS_PER_VISITOR_PER_10_MIN = 30
IMPRESSIONS_PER_IP_PER_10_MIN = 60
# Why a click bills nothing, named where other rules ask (order attribution).
OWN_STORE = "own store"
BOT = "bot"
NO_VIEW = "no viewable impression"
ANOTHER_SHOPPER = "not the shopper it was shown to"
SITE_LIMIT = "site limit"
# Settled after the store that sent it switched its widget off: out of the exchange.
NOT_PARTICIPATING = "store not participating"
# Settled after the partner kept the product off the exchange, or it stopped being shown.
PRODUCT_WITHDRAWN = "product withdrawn"
# Visitor and address hashes rotate with their salt; two periods are checked so the 24 h
# window holds across a rotation.
VISITOR_SALT_PERIOD = timedelta(hours=24)
# The rules look back a day and operators review held earnings within days: after this,
# what the exchange keeps of a shopper goes (lifecycle.forget_old_shoppers, and the click
# journals' set-aside lines: click_journal.recover_orphans).
SHOPPER_DATA_RETENTION = timedelta(days=30)

RULES_IN_WORDS = [
    f"New stores on a paying Shopify plan start with {STARTER_GRANT.normalize()} credits, once "
    "per store ever; development, trial and sandbox stores start with none.",
    f"Each billable click your widget sends to a partner earns you {EARN_PER_CLICK} credits.",
    f"Each billable click a partner's widget sends to you costs {SPEND_PER_CLICK} credit.",
    "A click is billable only when the shopper was shown the row and it was really seen (half "
    "of it on screen for a second), through a fresh signed Interlayer link bound to that view "
    "and that shopper, and the click comes from that same shopper (the same browser at the same "
    "network address; the addresses of one IPv6 /64 network count as one address): at most "
    "one billable click per view, none from known bots, none for a "
    "repeat of the same shopper on the same product within 24 hours, and within hourly limits "
    f"per shopper ({BILLABLE_CLICKS_PER_VISITOR_PER_HOUR}), per network address "
    f"({BILLABLE_CLICKS_PER_IP_PER_HOUR}, and {BILLABLE_CLICKS_PER_IP_PER_DAY} a day), per IPv6 site "
    f"(/48) from one store and to one store ({BILLABLE_CLICKS_PER_SITE_PER_STORE_PER_HOUR} each, "
    f"and {BILLABLE_CLICKS_PER_SITE_PER_STORE_PER_DAY} a day) and per store "
    f"({BILLABLE_CLICKS_PER_SOURCE_STORE_PER_HOUR}).",
    "A click is the shopper opening the link. Where the browser says so (its Fetch "
    "Metadata, which a page's script cannot set), a link fetched ahead of a click that may "
    "never come (prefetch, prerender) is refused, and one requested in the background or "
    "inside a frame is sent on unrecorded; the shopper's own click, when it comes, counts.",
    "When the click is settled, a moment after the shopper was sent on, both stores must still "
    "be installed and take part (neither has switched its widget off), the product must still "
    "be in the exchange (not kept off, not sold out or a draft), the partner must be able to "
    "pay, and neither may block the other. No balance ever goes below zero: a click a "
    "partner cannot pay still takes the shopper there, but bills nothing.",
    "A store whose click-through rate is far above the network's has its new clicks held for "
    "review, and one whose clicks come mostly from a few addresses has those addresses' new "
    "clicks held: the partner is not charged and "
    "the earning is not paid until the Interlayer team releases it (billing the partner then, "
    "if it can pay) or voids it. Held credits are shown as such.",
    "When your balance runs out, your widget keeps working and earning, but your products stop "
    "appearing on other stores until you earn credits again.",
    "Clicks on your own products in your own widget are free.",
    "Every credit movement is an entry in an append-only ledger; your balance is their sum.",
]


def fetched_ahead(*, purpose: str) -> bool:
    """Whether the browser says it is fetching a link ahead of a click that may never come
    (``Sec-Purpose``/``Purpose``: prefetch, prerender). https://www.w3.org/TR/fetch-metadata/"""
    return "prefetch" in purpose.lower()


def not_a_navigation(*, mode: str, dest: str) -> bool:
    """Whether the browser says a link was requested otherwise than by opening it as a page:
    by a script (``Sec-Fetch-Mode`` other than navigate: fetch, XMLHttpRequest, a service
    worker passing a request on) or into a frame or an element (``Sec-Fetch-Dest`` other
    than document). A request without these headers (an older browser, a proxy that drops
    them) is judged by the other rules alone. Not judged: whether the shopper's gesture
    started a navigation (``Sec-Fetch-User``), since WebKit never says, and Chromium does
    not for a link opened from its own menus (Android's "Open in new tab")."""
    return mode not in ("", "navigate") or dest not in ("", "document")


def starter_grant_allowed(store: Store) -> bool:
    return not store.plan_partner_development and store.plan_name in PAYING_PLANS


_CRAWLERS = CrawlerDetect()


def warm_up() -> None:
    """Compile the crawler list's patterns now (tens of milliseconds): a web process calls
    this as it starts, so its first click or view does not pay for it."""
    crawlerdetect.get_compiled_exclusions_regex()
    crawlerdetect.get_compiled_crawler_regex()


@lru_cache(maxsize=4096)
def is_bot(user_agent: str) -> bool:
    """A missing agent, or one the maintained crawler list (crawlerdetect) knows."""
    return not user_agent.strip() or bool(_CRAWLERS.isCrawler(user_agent))


def _salted(value: str, period: int, purpose: str) -> str:
    return _salt(purpose, period).digest(value.encode()).hex()


def _salt(purpose: str, period: int) -> macs.Mac:
    """The period's salt as a Mac, read once per period per process (runtime.visitor_salts):
    a salt never changes while it exists."""
    key = (purpose, period)
    salts = runtime.visitor_salts
    found = salts.get(key)
    if found is not None:
        return found
    with runtime.visitor_salts_lock:
        if key not in salts:
            salts[key] = macs.Mac(bytes.fromhex(_stored_salt(purpose, period)))
            # This period's and the last are all the rules look at.
            _forget_salts_before(max(p for _, p in salts) - 1)
        return salts[key]


def _forget_salts_before(period: int) -> None:
    """This process's copies of the salts of periods before ``period`` (the lock held)."""
    for key in [key for key in runtime.visitor_salts if key[1] < period]:
        del runtime.visitor_salts[key]


def _stored_salt(purpose: str, period: int) -> str:
    """The period's random salt, made by whichever process needs it first."""
    row = VisitorSalt.objects.filter(purpose=purpose, period=period).first()
    if row is not None:
        return row.salt
    try:
        with transaction.atomic():
            return VisitorSalt.objects.create(
                purpose=purpose, period=period, salt=secrets.token_hex(32)
            ).salt
    except IntegrityError:  # another process made it first
        return VisitorSalt.objects.get(purpose=purpose, period=period).salt


def forget_old_salts(*, now: datetime | None = None) -> int:
    """Hourly: delete the salts of periods before the previous one. Hashes made with them
    can no longer be matched by anyone: not by the rules (which look back a day), not by
    an operator, not with the secret key."""
    oldest = _period(now) - 1
    deleted, _ = VisitorSalt.objects.filter(period__lt=oldest).delete()
    with runtime.visitor_salts_lock:
        _forget_salts_before(oldest)
    return deleted


def _period(now: datetime | None) -> int:
    now = now or timezone.now()
    return int(now.timestamp() // VISITOR_SALT_PERIOD.total_seconds())


def salt_period_start(at: datetime) -> datetime:
    """When the salt period holding ``at`` began: hashes made from then on are under a new
    salt (and, as ``previous``, under the one before)."""
    return datetime.fromtimestamp(_period(at) * VISITOR_SALT_PERIOD.total_seconds(), tz=UTC)


@dataclass(frozen=True)
class Visitor:
    """A shopper as the exchange knows one: salted hashes of address and agent for this
    salt period and the previous one (so a 24 h window holds across a rotation)."""

    current: str
    previous: str


def visitor(*, ip: str, user_agent: str, now: datetime | None = None) -> Visitor:
    current, previous = visitor_hashes(ip=ip, user_agent=user_agent, now=now)
    return Visitor(current=current, previous=previous)


def visitor_hashes(*, ip: str, user_agent: str, now: datetime | None = None) -> tuple[str, str]:
    """(current, previous) salted hashes of a visitor. The salt is random, new every period
    and deleted after the next one (``forget_old_salts``), so hashes cannot be linked across
    periods, nor recomputed by anyone once their salt is gone."""
    return _this_and_last_period(f"{network_address(ip)}|{user_agent}", "visitor", now)


def ip_hashes(ip: str, *, now: datetime | None = None) -> tuple[str, str]:
    """(current, previous) salted hashes of the address a request came from, like visitors
    (never stored in the clear); limits check both so they hold across a salt rotation."""
    return _this_and_last_period(network_address(ip), "address", now)


def site_hashes(ip: str, *, now: datetime | None = None) -> tuple[str, str]:
    """(current, previous) salted hashes of the IPv6 site (/48) an address is in, like
    ``ip_hashes``; blank for an IPv4 address (or one carried in IPv6), which is its own
    site to the limits."""
    site = network_site(ip)
    return ("", "") if site is None else _this_and_last_period(site, "address", now)


def _this_and_last_period(value: str, purpose: str, now: datetime | None) -> tuple[str, str]:
    period = _period(now)
    return _salted(value, period, purpose), _salted(value, period - 1, purpose)


@lru_cache(maxsize=4096)
def network_site(ip: str) -> str | None:
    """The /48 network of an IPv6 address (the most a site is given), or None for an IPv4
    address or an IPv6 one that carries it."""
    try:
        network = ipaddress.IPv6Network(network_address(ip))  # a /64, as network_address gives
    except ValueError:
        return None  # an IPv4 address, or no address
    return str(network.supernet(new_prefix=48))


@lru_cache(maxsize=4096)
def network_address(ip: str) -> str:
    """The address the exchange's limits count: an IPv4 address as it is; an IPv6 address as
    its /64 network, the least one subscriber is given whole, so that rotating through it is
    one address (many subscribers get a /56 or a /48: those are not folded, since a mobile
    network gives each phone its own /64 out of a shared block); an IPv6 address that
    carries an IPv4 one (mapped, 6to4, Teredo) as that IPv4 address."""
    try:
        address = ipaddress.ip_address(ip.strip())
    except ValueError:
        return ip
    if isinstance(address, ipaddress.IPv6Address):
        carried = address.ipv4_mapped or address.sixtofour or (address.teredo or (None, None))[1]
        if carried is not None:
            return str(carried)
        return str(ipaddress.IPv6Network((address, 64), strict=False))
    return str(address)
