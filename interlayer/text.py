"""Text every column can hold.

JSON can carry what no column takes: a NUL (``\\u0000``: PostgreSQL's text and jsonb refuse
it) and a lone surrogate (``\\ud800``: Python decodes it, but it is no UTF-8, so the
driver cannot send it). A surrogate pair decodes to one character, so any surrogate left
in a ``str`` is a lone one.
"""

from __future__ import annotations

import re
from typing import Any

_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


def storable(text: str) -> bool:
    return _UNSTORABLE.search(text) is None


def made_storable(value: Any) -> Any:
    """Parsed JSON with each NUL and lone surrogate in its strings (keys too) replaced by
    U+FFFD, the replacement character."""
    if isinstance(value, str):
        return _UNSTORABLE.sub("\ufffd", value)
    if isinstance(value, dict):
        return {made_storable(key): made_storable(item) for key, item in value.items()}
    if isinstance(value, list):
        return [made_storable(item) for item in value]
    return value
