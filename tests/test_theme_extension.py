"""The theme app extension as Shopify's theme editor and reviewers read it."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from simulator.state import AppConfig, World
from simulator.storefront import DESIGN_MODE_PARAM, RECOMMENDATIONS_SECTION, Storefront

EXTENSION = Path(__file__).resolve().parent.parent / "extensions" / "interlayer-widget"
MAX_BLOCK_NAME = 25  # Shopify rejects longer block schema names ("name is too long")


BLOCKS = sorted(EXTENSION.glob("blocks/*.liquid"))
LIQUID = BLOCKS + sorted(EXTENSION.glob("snippets/*.liquid"))
# Storefront strings (``| t`` in Liquid) and theme-editor strings (``t:`` in schemas).
STOREFRONT_LOCALES = sorted(
    set(EXTENSION.glob("locales/*.json")) - set(EXTENSION.glob("locales/*.schema.json"))
)
SCHEMA_LOCALES = sorted(EXTENSION.glob("locales/*.schema.json"))
LANGUAGES = {"en", "fr", "de", "es"}


def schema_of(block: Path) -> dict:
    schema = re.search(r"{% schema %}(.*?){% endschema %}", block.read_text(), re.DOTALL)
    return json.loads(schema.group(1))


def flat_keys(data: dict, prefix: str = "") -> dict[str, str]:
    """A locale file as {"dotted.key": "text"}."""
    keys: dict[str, str] = {}
    for key, value in data.items():
        if isinstance(value, dict):
            keys.update(flat_keys(value, f"{prefix}{key}."))
        else:
            keys[f"{prefix}{key}"] = value
    return keys


def strings(path: Path) -> dict[str, str]:
    return flat_keys(json.loads(path.read_text()))


def schema_keys(value) -> set[str]:
    """Every ``t:`` key in a schema, however deep (names, labels, infos, options)."""
    if isinstance(value, dict):
        return set().union(*map(schema_keys, value.values())) if value else set()
    if isinstance(value, list):
        return set().union(*map(schema_keys, value)) if value else set()
    return (
        {value.removeprefix("t:")} if isinstance(value, str) and value.startswith("t:") else set()
    )


def liquid_keys(path: Path) -> set[str]:
    return set(re.findall(r"""['"]([\w.]+)['"]\s*\|\s*t\b""", path.read_text()))


def test_the_extension_speaks_english_french_german_and_spanish():
    def languages(paths):
        return {p.name.split(".")[0] for p in paths}

    assert languages(STOREFRONT_LOCALES) == LANGUAGES
    assert languages(SCHEMA_LOCALES) == LANGUAGES
    assert [p.name for p in STOREFRONT_LOCALES if ".default." in p.name] == ["en.default.json"]
    assert [p.name for p in SCHEMA_LOCALES if ".default." in p.name] == ["en.default.schema.json"]


# theme-check's app mode neither counts a block name's characters nor resolves ``t:`` names.
@pytest.mark.parametrize("locale", SCHEMA_LOCALES, ids=lambda p: p.name)
@pytest.mark.parametrize("block", BLOCKS, ids=lambda p: p.name)
def test_block_schema_names_fit_shopifys_limit_in_every_language(block, locale):
    name = schema_of(block)["name"]
    assert name.startswith("t:"), "block names come from the locale files"

    shown = strings(locale)[name.removeprefix("t:")]

    assert 0 < len(shown) <= MAX_BLOCK_NAME, shown


@pytest.mark.parametrize("block", BLOCKS, ids=lambda p: p.name)
def test_every_schema_label_comes_from_the_locale_files(block):
    schema = schema_of(block)
    labels = [schema["name"]]
    for setting in schema.get("settings", []):
        labels += [setting[k] for k in ("label", "info") if k in setting]
        labels += [option["label"] for option in setting.get("options", [])]

    assert labels and all(label.startswith("t:") for label in labels), labels


# theme-check's app mode looks keys up in the default locale only.
@pytest.mark.parametrize("locale", SCHEMA_LOCALES, ids=lambda p: p.name)
def test_every_schema_key_is_in_every_schema_locale(locale):
    used = set().union(*(schema_keys(schema_of(block)) for block in BLOCKS))

    missing = used - strings(locale).keys()

    assert used and not missing, missing


@pytest.mark.parametrize("locale", STOREFRONT_LOCALES, ids=lambda p: p.name)
def test_every_storefront_key_is_in_every_storefront_locale(locale):
    used = set().union(*map(liquid_keys, LIQUID))

    missing = used - strings(locale).keys()

    assert used and not missing, missing


@pytest.mark.parametrize("locale", STOREFRONT_LOCALES + SCHEMA_LOCALES, ids=lambda p: p.name)
def test_every_locale_file_has_the_default_locales_keys_and_no_others(locale):
    default = STOREFRONT_LOCALES if ".schema." not in locale.name else SCHEMA_LOCALES
    (default_file,) = [p for p in default if ".default." in p.name]

    keys, expected = strings(locale).keys(), strings(default_file).keys()

    assert keys == expected
    assert all(strings(locale).values())


@pytest.mark.parametrize(
    ("root_url", "proxy"), [("/", "/apps/interlayer"), ("/fr", "/fr/apps/interlayer")]
)
def test_the_proxy_path_is_right_under_any_storefront_root(root_url, proxy):
    world = World(
        AppConfig(api_key="k", api_secret="s", app_url="http://app"), public_url="http://sim"
    )
    shop = world.add_shop("alpha", {"shop": {"name": "Alpha"}, "products": []})
    world.install(shop)

    html = Storefront(world).render_embed(shop, "product", {"id": 1}, root_url=root_url)

    assert f'data-proxy="{proxy}"' in html


def storefront_page(
    path: str, *, embed: bool = True, block: bool = True, query: dict | None = None, status=200
) -> str:
    world = World(
        AppConfig(api_key="k", api_secret="s", app_url="http://app"), public_url="http://sim"
    )
    product = {"title": "Kettle", "handle": "kettle", "variants": [{"price": "30.00"}]}
    shop = world.add_shop("alpha", {"shop": {"name": "Alpha"}, "products": [product]})
    world.install(shop)
    world.theme_embed_enabled["alpha"] = embed
    world.theme_app_block_added["alpha"] = block
    answered, page = Storefront(world).page(shop, path, query)
    assert answered == status
    return page


def script_tags(page: str) -> list[str]:
    return re.findall(r"<script [^>]*interlayer\.js[^>]*>", page)


@pytest.mark.parametrize(
    ("path", "lang", "previous"),
    [
        ("/products/kettle", "en", "Previous products"),
        ("/fr/products/kettle", "fr", "Produits précédents"),
        ("/de/products/kettle", "de", "Vorherige Produkte"),
        ("/es/products/kettle", "es", "Productos anteriores"),
    ],
)
def test_storefront_strings_reach_the_script_in_the_pages_language(path, lang, previous):
    page = storefront_page(path)

    (block_script, embed_script) = script_tags(page)
    assert f'<html lang="{lang}">' in page
    for tag in (block_script, embed_script):
        assert f'data-text-previous="{previous}"' in tag
        assert f'data-locale="{lang}"' in tag
        assert "translation missing" not in tag


def test_the_app_block_loads_the_script_itself_when_the_embed_is_off():
    page = storefront_page("/fr/products/kettle", embed=False)

    (tag,) = script_tags(page)

    assert "data-anchor" not in tag  # the block's own tag, not the embed's
    assert 'data-proxy="/fr/apps/interlayer"' in tag
    assert page.index("data-interlayer-slot") < page.index(tag)


def test_a_theme_without_the_block_or_the_embed_shows_no_widget_and_reserves_nothing():
    without_block = storefront_page("/products/kettle", block=False)
    neither = storefront_page("/products/kettle", block=False, embed=False)
    slot_element = re.compile(r"<[a-z]+\b[^>]*\sdata-interlayer-slot\b")

    (tag,) = script_tags(without_block)
    assert "data-anchor" in tag  # the embed's own tag: it places the row itself
    # No block's slot; the embed reserves its row's space from its inline script, after
    # its anchor (tests/browser/test_storefront_widget.py).
    assert not slot_element.search(without_block)
    assert "data-interlayer-embed" in without_block
    assert script_tags(neither) == [] and "data-interlayer" not in neither


def test_the_theme_editors_preview_is_in_design_mode_and_renders_a_section_alone():
    design_mode = {DESIGN_MODE_PARAM: "1"}

    live = storefront_page("/products/kettle")
    editor = storefront_page("/products/kettle", query=design_mode)
    section = storefront_page(
        "/products/kettle", query={**design_mode, "section_id": RECOMMENDATIONS_SECTION}
    )
    unknown = storefront_page(
        "/products/kettle", query={**design_mode, "section_id": "nope"}, status=404
    )

    assert "Shopify.designMode" not in live and "theme-editor.js" not in live
    # Set in the head, before the deferred scripts of the theme and its apps run.
    assert editor.index("Shopify.designMode = true;") < editor.index("interlayer.js")
    assert "/cdn/theme-editor.js" in editor
    wrapper = f'<div id="shopify-section-{RECOMMENDATIONS_SECTION}" class="shopify-section">'
    assert wrapper in editor and wrapper in live
    assert section.startswith(wrapper) and section.endswith("</div>")
    assert "data-interlayer-slot" in section
    assert "<html" not in section and 'class="product"' not in section
    assert unknown == ""


def test_in_the_theme_editor_the_script_is_told_it_is_in_design_mode():
    live = script_tags(storefront_page("/products/kettle"))
    editor = script_tags(storefront_page("/products/kettle", query={DESIGN_MODE_PARAM: "1"}))

    assert len(editor) == 2 and all(" data-design-mode" in tag for tag in editor)
    assert not any("data-design-mode" in tag for tag in live)


PIXEL = EXTENSION.parent / "interlayer-pixel"


def test_the_web_pixel_declares_the_package_it_imports_and_that_package_provides_it():
    """Shopify CLI bundles the pixel with its own package.json's dependencies on
    ``shopify app deploy``: an import nothing declares fails the build. Installed here by
    the project's npm workspace (scripts/setup.sh), and imported as the bundler would."""
    source = (PIXEL / "src" / "index.js").read_text()
    imported = set(re.findall(r"""^import .* from ["']([^"'./][^"']*)["'];?$""", source, re.M))
    declared = json.loads((PIXEL / "package.json").read_text())["dependencies"]

    assert imported == {"@shopify/web-pixels-extension"} <= set(declared)
    node = shutil.which("node")
    assert node, "node is needed (scripts/setup.sh --system)"
    loaded = subprocess.run(
        [node, "--input-type=module", "-e",
         "import { register } from '@shopify/web-pixels-extension'; console.log(typeof register)"],
        cwd=PIXEL, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert loaded.stdout.strip() == "function", loaded.stderr
