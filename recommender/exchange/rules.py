"""What merchants are promised, in one place (published in the README and on the settings
page from ``RULES_IN_WORDS``).

- New stores get a starter grant so they are seen from day one.
- A billable click from store A's widget to store B's product earns A ``EARN_PER_CLICK``
  and costs B ``SPEND_PER_CLICK``; the ratio is below 1:1 so the network cannot inflate.
- A click is billable when its token is signed by us and unexpired, it is not from a known
  bot, the same visitor has not clicked the same product in the last 24 hours, the token
  has not been billed before, and A is not B. Raw and billable clicks are both recorded.
- A store whose balance is used up keeps showing partners (and earning), but its own
  products stop appearing on other stores until it earns again.
- Every movement is an append-only ledger entry; balances are sums of entries.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from datetime import datetime, timedelta
from decimal import Decimal

from django.conf import settings
from django.utils import timezone

STARTER_GRANT = Decimal("25.00")
EARN_PER_CLICK = Decimal("0.80")
SPEND_PER_CLICK = Decimal("1.00")
CLICK_TOKEN_MAX_AGE = timedelta(hours=2)
DEDUPE_WINDOW = timedelta(hours=24)
# Visitor hashes rotate with their salt; two periods are checked so the 24 h window holds.
VISITOR_SALT_PERIOD = timedelta(hours=24)
# A visitor counting more impressions than this in ten minutes is not a shopper.
IMPRESSIONS_PER_VISITOR_PER_10_MIN = 30

BOT_USER_AGENT = re.compile(
    r"bot|crawl|spider|slurp|headless|phantom|lighthouse|preview|facebookexternalhit|"
    r"python-requests|python-httpx|curl/|wget|go-http-client|java/|httpclient|scrapy|"
    r"pingdom|uptime|monitor",
    re.IGNORECASE,
)

RULES_IN_WORDS = [
    f"New stores start with {STARTER_GRANT.normalize()} credits.",
    f"Each billable click your widget sends to a partner earns you {EARN_PER_CLICK} credits.",
    f"Each billable click a partner's widget sends to you costs {SPEND_PER_CLICK} credit.",
    "A click is billable when it comes through a fresh, signed Interlayer link, is not from a "
    "known bot, is not a repeat by the same visitor on the same product within 24 hours, and "
    "goes to another store.",
    "When your balance runs out, your widget keeps working and earning, but your products stop "
    "appearing on other stores until you earn credits again.",
    "Clicks on your own products in your own widget are free.",
]


def is_bot(user_agent: str) -> bool:
    return not user_agent.strip() or bool(BOT_USER_AGENT.search(user_agent))


def visitor_hashes(*, ip: str, user_agent: str, now: datetime | None = None) -> tuple[str, str]:
    """(current, previous) salted hashes of a visitor. The salt rotates every period and is
    derived from the secret key, so hashes cannot be reversed or linked across periods."""
    now = now or timezone.now()
    period = int(now.timestamp() // VISITOR_SALT_PERIOD.total_seconds())

    def digest(p: int) -> str:
        salt = hmac.new(settings.SECRET_KEY.encode(), f"visitor-salt:{p}".encode(), hashlib.sha256)
        return hmac.new(salt.digest(), f"{ip}|{user_agent}".encode(), hashlib.sha256).hexdigest()

    return digest(period), digest(period - 1)
