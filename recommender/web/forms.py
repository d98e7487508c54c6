"""Validation of what merchants send from the settings page."""

from __future__ import annotations

import math
import re

from django import forms
from django.db.models import Q

from interlayer.text import storable
from recommender.models import WidgetSettings
from stores.models import Store

COLOUR = re.compile(r"\A#[0-9a-fA-F]{6}\Z")
# The least contrast with the background (WCAG's ratio, level AA) the widget's colours may
# have: its text, product titles and prices at the size of body text (4.5:1), and its
# accent, which draws the arrows and the keyboard focus ring (3:1, for what is not text).
MIN_CONTRAST = {"text_color": 4.5, "accent_color": 3.0}
MAX_BLOCKED = 5000
MAX_EXCLUDED_CATEGORIES = 200


def _storable(text: str) -> None:
    if not storable(text):
        raise forms.ValidationError("Use letters, digits and punctuation only.")


class ListField(forms.Field):
    """A JSON list of strings (the page posts JSON)."""

    def __init__(self, *, max_items: int, **kwargs):
        self.max_items = max_items
        super().__init__(**kwargs)

    def to_python(self, value):
        if value in (None, ""):
            return []
        # A NUL or a lone surrogate is in no name, and the lookup that checks them fails
        # in the database on either.
        if not isinstance(value, list) or not all(
            isinstance(v, str) and storable(v) for v in value
        ):
            raise forms.ValidationError("Expected a list of names.")
        if len(value) > self.max_items:
            raise forms.ValidationError(f"At most {self.max_items} entries.")
        return list(dict.fromkeys(v.strip() for v in value if v.strip()))


class TextField(forms.CharField):
    """A JSON string: a list, an object or a number is refused, not saved as Python's
    spelling of it (CharField would make "['a', 'b']" of a list)."""

    def to_python(self, value):
        if value is not None and value != "" and not isinstance(value, str):
            raise forms.ValidationError("Expected text.")
        return super().to_python(value)


class WidgetSettingsForm(forms.Form):
    enabled = forms.BooleanField(required=False)
    # Empty: the heading in each shopper's language (the widget's locale files).
    title = TextField(required=False, max_length=80, strip=True, validators=[_storable])
    items = forms.IntegerField(min_value=1, max_value=12)
    own_share = forms.IntegerField(min_value=0, max_value=100)
    accent_color = forms.RegexField(
        COLOUR, error_messages={"invalid": "Use a colour like #1a1a1a."}
    )
    text_color = forms.RegexField(COLOUR, error_messages={"invalid": "Use a colour like #1a1a1a."})
    background_color = forms.RegexField(
        COLOUR, error_messages={"invalid": "Use a colour like #ffffff."}
    )
    avoid_competitors = forms.BooleanField(required=False)
    blocked_stores = ListField(max_items=MAX_BLOCKED, required=False)
    excluded_categories = ListField(max_items=MAX_EXCLUDED_CATEGORIES, required=False)

    def __init__(
        self,
        *args,
        store: Store,
        known_categories: dict[str, str],
        saved: WidgetSettings,
        **kwargs,
    ):
        self.store = store
        self.known_categories = known_categories  # full name -> taxonomy id
        # Taxonomy ids this store already excludes. A category leaves the network with its
        # last products (a partner redacted), and the page then shows it by its id: it must
        # stay savable, or no other setting could be saved until the merchant removed it.
        self.saved_categories = set(saved.excluded_categories)
        self.saved_blocked = saved.blocked_stores.values("pk")
        # The colours saved before the contrast rule, likewise: kept as they are, they must
        # not stop the merchant from saving anything else (switching the widget off, say).
        self.saved_colours = {
            name: getattr(saved, name).lower() for name in (*MIN_CONTRAST, "background_color")
        }
        super().__init__(*args, **kwargs)

    def clean(self) -> dict:
        cleaned = super().clean()
        background = cleaned.get("background_color")
        for name, least in MIN_CONTRAST.items():
            colour = cleaned.get(name)
            if colour is None or background is None:
                continue  # refused already
            if (colour.lower(), background.lower()) == (
                self.saved_colours.get(name),
                self.saved_colours.get("background_color"),
            ):
                continue  # as saved
            ratio = contrast(colour, background)
            if ratio < least:
                what = "text" if name == "text_color" else "arrows and focus ring"
                # Rounded down: 2.995:1 is refused, and must not read "3.0:1, at least 3:1".
                shown = math.floor(ratio * 10) / 10
                self.add_error(
                    name,
                    f"Shoppers could not make out the widget's {what} on this background: "
                    f"contrast {shown:.1f}:1, at least {least:g}:1.",
                )
        return cleaned

    def clean_blocked_stores(self) -> list[Store]:
        domains = self.cleaned_data["blocked_stores"]
        if self.store.shop_domain in domains:
            raise forms.ValidationError("A store cannot block itself.")
        # Stores in the network (those the partner search finds), and those this store
        # blocked before: a store that left is as unknown as one that never was, or any
        # merchant could ask whether a shop ever installed the app.
        found = list(
            Store.objects.filter(shop_domain__in=domains)
            .filter(Q(status=Store.Status.ACTIVE) | Q(pk__in=self.saved_blocked))
            .only("id", "shop_domain")
        )
        unknown = sorted(set(domains) - {s.shop_domain for s in found})
        if unknown:
            raise forms.ValidationError(
                f"Unknown partner stores: {', '.join(unknown[:10])}"
                + (f" and {len(unknown) - 10} more" if len(unknown) > 10 else "")
            )
        return found

    def clean_excluded_categories(self) -> list[str]:
        """Full names of categories known to the network, or the ids of those already saved."""
        values = self.cleaned_data["excluded_categories"]
        unknown = [
            value
            for value in values
            if value not in self.known_categories and value not in self.saved_categories
        ]
        if unknown:
            raise forms.ValidationError(f"Unknown categories: {', '.join(unknown[:10])}")
        return list(dict.fromkeys(self.known_categories.get(value, value) for value in values))


def contrast(a: str, b: str) -> float:
    """WCAG 2's contrast ratio of two colours written #rrggbb, 1-21."""
    lighter, darker = sorted((_luminance(a), _luminance(b)), reverse=True)
    return (lighter + 0.05) / (darker + 0.05)


def _luminance(colour: str) -> float:
    """WCAG 2's relative luminance of an sRGB colour."""
    channels = [int(colour[i : i + 2], 16) / 255 for i in (1, 3, 5)]
    r, g, b = (c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4 for c in channels)
    return 0.2126 * r + 0.7152 * g + 0.0722 * b
