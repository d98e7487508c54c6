"""The set-up guide on the settings page: catalog synced → app embed on → app block on the
product template → partner products in the preview → live.

Every step is read from the store's real state, never from a box the merchant ticks: the
catalog sync and products in our database, the live theme's ``config/settings_data.json``
and ``templates/product.json`` through GraphQL (stores.services.theme_state, cached
briefly), the ranking's answer for the store's pages, and the impressions its widget
recorded. A step the merchant has not done yet carries the action that does it, such as
Shopify's theme editor deep links.
"""

from __future__ import annotations

from typing import Literal, TypedDict

from recommender.catalog import sync as catalog_sync
from recommender.models import CatalogSync, Impression, Product, WidgetSettings
from recommender.ranking.recommendations import recommendations_for
from stores import services as store_services
from stores.models import Store

# "optional": worth doing, not needed (the embed and the block each show the widget);
# "waiting": nothing the merchant can do (no partner product fits yet). Neither holds the
# guide back.
Status = Literal["done", "todo", "unknown", "skipped", "optional", "waiting"]


class StepAction(TypedDict):
    label: str
    # A link (the theme editor, the storefront, a part of this page), or the name of an
    # action the page performs itself ("sync").
    url: str | None
    command: str | None


class SetupStep(TypedDict):
    key: str
    title: str
    status: Status
    detail: str
    action: StepAction | None


class SetupGuide(TypedDict):
    steps: list[SetupStep]
    current: str | None  # the first step still to do
    complete: bool
    theme: str | None


def _link(label: str, url: str) -> StepAction:
    return {"label": label, "url": url, "command": None}


def setup_guide(store: Store, *, fresh: bool = False) -> SetupGuide:
    """The guide's steps for ``store``; ``fresh`` reads the theme again (the merchant
    says they changed it) instead of reusing the last read."""
    theme = store_services.theme_state(store, fresh=fresh)
    embed, block = _embed_step(theme), _block_step(theme)
    _either_shows_the_widget(embed, block)
    steps = [_catalog_step(store), embed, block, _preview_step(store)]
    steps.append(_live_step(store, theme))
    current = next((s["key"] for s in steps if s["status"] in ("todo", "unknown")), None)
    return {"steps": steps, "current": current, "complete": current is None,
            "theme": theme["theme"]}  # fmt: skip


def _catalog_step(store: Store) -> SetupStep:
    sync = CatalogSync.objects.filter(store=store).first()
    shown = Product.objects.filter(Product.OFFERED, store=store).count()
    step: SetupStep = {
        "key": "catalog", "title": "Sync your catalog", "status": "todo",
        "detail": "Interlayer reads your products so partner stores can show them.",
        "action": {"label": "Sync catalog now", "url": None, "command": "sync"},
    }  # fmt: skip
    if sync is not None and sync.state == CatalogSync.State.FAILED:  # a first read too
        step["detail"] = f"The last sync did not finish. {catalog_sync.failure_in_words(sync)}"
        return step
    if sync is None or sync.finished_at is None:
        if sync is not None and sync.state in (CatalogSync.State.QUEUED, CatalogSync.State.RUNNING):
            step.update(detail="Your catalog is syncing now.", action=None)
        return step
    if shown == 0:
        step["detail"] = (
            "Your catalog is synced, but none of your products can be shown yet (active, "
            "published, in stock, and not kept off the network)."
        )
        return step
    step.update(status="done", action=None,
                detail=f"{shown} of your products can be shown on partner stores.")  # fmt: skip
    return step


def _embed_step(theme: store_services.ThemeState) -> SetupStep:
    step: SetupStep = {
        "key": "embed", "title": 'Turn on the "Partner products" app embed', "status": "todo",
        "detail": "The app embed loads the widget on your storefront; it is switched on in "
                  "the theme editor's App embeds, as Partner products.",
        "action": _link("Turn on in the theme editor", theme["activate_url"]),
    }  # fmt: skip
    if theme["embed_enabled"]:
        step.update(status="done", action=None,
                    detail=f"The app embed is on in your live theme ({theme['theme']}).")  # fmt: skip
    elif theme["embed_enabled"] is None:
        step.update(status="unknown", detail="We could not read your live theme just now.")
    return step


def _block_step(theme: store_services.ThemeState) -> SetupStep:
    step: SetupStep = {
        "key": "block", "title": "Add the partner product row to your product pages",
        "status": "todo",
        "detail": "Place the Partner product row block (the theme editor lists it under "
                  "Apps) in your product page's main section, where shoppers see it next to "
                  "the product.",
        "action": _link("Add the block in the theme editor", theme["add_block_url"]),
    }  # fmt: skip
    if theme["block_added"]:
        step.update(status="done", action=None,
                    detail="The block is on your product template.")  # fmt: skip
    elif theme["blocks_supported"] is False:
        step.update(status="skipped", action=None,
                    detail="Your theme's product page does not take app blocks; the app "
                           "embed shows the widget there instead.")  # fmt: skip
    elif theme["block_added"] is None:
        step.update(status="unknown", detail="We could not read your product template just now.")
    return step


def _either_shows_the_widget(embed: SetupStep, block: SetupStep) -> None:
    """The app embed and the block each show the widget on product pages: once one is on,
    the other is optional (the embed adds the other pages; the block places the row in a
    section), and the guide can be finished without it."""
    if embed["status"] == "todo" and block["status"] == "done":
        embed.update(status="optional",
                     detail="Optional: the block shows the widget on your product pages; the "
                            "app embed shows it on your other pages too.")  # fmt: skip
    elif block["status"] == "todo" and embed["status"] == "done":
        block.update(status="optional",
                     detail="Optional: the app embed shows the widget on your product pages "
                            "already; the block places it inside a section of your choice.")  # fmt: skip


def _preview_step(store: Store) -> SetupStep:
    partners = [item for item in recommendations_for(store) if item.slot == "partner"]
    step: SetupStep = {
        "key": "preview", "title": "Check what shoppers will see", "status": "waiting",
        "detail": "No partner product fits your store yet: Interlayer shows nothing rather "
                  "than something irrelevant, and new partners join every day.",
        "action": _link("Open the preview", "#preview-title"),
    }  # fmt: skip
    if partners:
        step.update(status="done",
                    detail=f"Partner stores have products that fit your pages, such as "
                           f"“{partners[0].product.title}”.")  # fmt: skip
        return step
    widget = WidgetSettings.objects.filter(store=store).first()
    if widget is not None and (
        widget.own_share >= 100 or widget.excluded_categories or widget.blocked_stores.exists()
    ):
        # The merchant's own settings may be what keeps partners out: theirs to change.
        step.update(status="todo",
                    detail="No partner product shows on your pages with your settings: your "
                           "own products' share, the stores you block and the categories you "
                           "never show can keep them all out.",
                    action=_link("Check the widget settings", "#widget-title"))  # fmt: skip
    return step


def _live_step(store: Store, theme: store_services.ThemeState) -> SetupStep:
    widget = WidgetSettings.objects.filter(store=store).first()
    on_theme = bool(theme["embed_enabled"] or theme["block_added"])
    seen = Impression.objects.filter(store=store).exists()
    storefront = store.storefront_url
    step: SetupStep = {
        "key": "live", "title": "Go live", "status": "todo",
        "detail": "Waiting for the first shopper to see the widget on your store.",
        "action": _link("View your store", storefront),
    }  # fmt: skip
    if widget is not None and not widget.enabled:
        step.update(detail="The widget is switched off: turn it on in Storefront widget below.",
                    action=_link("Go to the widget settings", "#widget-title"))  # fmt: skip
    elif not on_theme:
        step["detail"] = "Turn on the app embed or add the block first."
        step["action"] = None
    elif seen:
        step.update(status="done", action=None,
                    detail="Shoppers are seeing partner products on your store.")  # fmt: skip
    return step
