"""The ``pageToken`` loop, pure: a fetch callable in, pages out.

A listing ends when ``nextPageToken`` is missing or empty. Anything else that would page forever
or silently lose devices raises :class:`ListingError`: a token seen before, or an empty page that
still carries a token.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from inventory.errors import ListingError

MAX_PAGES = 1_000_000


@dataclass(frozen=True)
class Page:
    """One page of a listing."""

    number: int
    items: list[Any]
    total_size: int | None
    next_token: str | None


def iter_pages(
    fetch: Callable[[str | None], dict[str, Any]],
    items_key: str,
    *,
    max_pages: int = MAX_PAGES,
) -> Iterator[Page]:
    """Yield every page of a listing, following ``nextPageToken``.

    Args:
        fetch: called with the page token (None for the first page); returns the decoded JSON.
        items_key: the response field holding the page's items (``devices``, ``customers``).
        max_pages: a hard stop against a server that never ends.

    Raises:
        ListingError: a repeated token, an empty page with a token, a malformed page, or
            more than ``max_pages`` pages.
    """
    token: str | None = None
    seen: set[str] = set()
    for number in range(1, max_pages + 1):
        body = fetch(token)
        if not isinstance(body, dict):
            raise ListingError(f"page {number} is not a JSON object")
        items = body.get(items_key, [])
        if not isinstance(items, list):
            raise ListingError(f"page {number}: {items_key} is not a list")
        total = body.get("totalSize")
        total_size = total if isinstance(total, int) and not isinstance(total, bool) else None
        if isinstance(total, str) and re.fullmatch(r"[0-9]{1,10}", total):
            total_size = int(total)
        next_token = body.get("nextPageToken") or None
        if next_token is not None and not isinstance(next_token, str):
            raise ListingError(f"page {number}: nextPageToken is not a string")
        if next_token is not None and not items:
            raise ListingError(f"page {number} is empty but carries a nextPageToken")
        if next_token is not None and next_token in seen:
            raise ListingError(f"page {number} repeats an earlier nextPageToken")
        yield Page(number=number, items=items, total_size=total_size, next_token=next_token)
        if next_token is None:
            return
        seen.add(next_token)
        token = next_token
    raise ListingError(f"listing did not end after {max_pages} pages")
