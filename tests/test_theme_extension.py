"""The theme app extension as Shopify's theme editor and reviewers read it."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from simulator.state import AppConfig, World
from simulator.storefront import Storefront

EXTENSION = Path(__file__).resolve().parent.parent / "extensions" / "interlayer-widget"
MAX_BLOCK_NAME = 25  # Shopify rejects longer block schema names ("name is too long")


@pytest.mark.parametrize("block", sorted(EXTENSION.glob("blocks/*.liquid")), ids=lambda p: p.name)
def test_block_schema_names_fit_shopifys_limit(block):
    schema = re.search(r"{% schema %}(.*?){% endschema %}", block.read_text(), re.DOTALL)

    name = json.loads(schema.group(1))["name"]

    assert 0 < len(name) <= MAX_BLOCK_NAME, name


@pytest.mark.parametrize(
    ("root_url", "proxy"), [("/", "/apps/interlayer"), ("/fr", "/fr/apps/interlayer")]
)
def test_the_proxy_path_is_right_under_any_storefront_root(root_url, proxy):
    world = World(
        AppConfig(api_key="k", api_secret="s", app_url="http://app"), public_url="http://sim"
    )
    shop = world.add_shop("alpha", {"shop": {"name": "Alpha"}, "products": []})
    world.install(shop)

    html = Storefront(world).render_embed(shop, "index", None, root_url=root_url)

    assert f'data-proxy="{proxy}"' in html
