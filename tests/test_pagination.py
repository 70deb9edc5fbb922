"""Pure tests of the ``pageToken`` loop: a scripted fetch callable, literal pages."""

from __future__ import annotations

from typing import Any

import pytest

from inventory.api.pagination import MAX_PAGES, Page, iter_pages
from inventory.errors import ListingError


class ScriptedFetch:
    """Answers each call with the next scripted page and records the tokens it was given."""

    def __init__(self, pages: list[Any]) -> None:
        self.pages = list(pages)
        self.tokens: list[str | None] = []

    def __call__(self, token: str | None) -> Any:
        self.tokens.append(token)
        if not self.pages:
            raise AssertionError("fetched past the end of the script")
        return self.pages.pop(0)


def test_follows_tokens_to_the_end() -> None:
    fetch = ScriptedFetch(
        [
            {"devices": [1, 2], "nextPageToken": "tok-a", "totalSize": 5},
            {"devices": [3, 4], "nextPageToken": "tok-b", "totalSize": 5},
            {"devices": [5], "totalSize": 5},
        ]
    )
    pages = list(iter_pages(fetch, "devices"))
    assert fetch.tokens == [None, "tok-a", "tok-b"]
    assert pages == [
        Page(number=1, items=[1, 2], total_size=5, next_token="tok-a"),
        Page(number=2, items=[3, 4], total_size=5, next_token="tok-b"),
        Page(number=3, items=[5], total_size=5, next_token=None),
    ]


def test_is_lazy_one_fetch_per_page_consumed() -> None:
    fetch = ScriptedFetch([{"devices": [1], "nextPageToken": "a"}, {"devices": [2]}])
    pages = iter_pages(fetch, "devices")
    assert fetch.tokens == []
    assert next(pages).items == [1]
    assert fetch.tokens == [None]
    assert next(pages).items == [2]
    assert fetch.tokens == [None, "a"]
    assert list(pages) == []


def test_stops_on_missing_token() -> None:
    fetch = ScriptedFetch([{"customers": [{"companyId": "1"}]}, {"customers": [2]}])
    pages = list(iter_pages(fetch, "customers"))
    assert [p.items for p in pages] == [[{"companyId": "1"}]]
    assert fetch.tokens == [None]


@pytest.mark.parametrize("token", ["", None])
def test_stops_on_empty_or_null_token(token: str | None) -> None:
    fetch = ScriptedFetch([{"devices": [1], "nextPageToken": token}, {"devices": [2]}])
    pages = list(iter_pages(fetch, "devices"))
    assert len(pages) == 1
    assert pages[0].next_token is None
    assert fetch.tokens == [None]


def test_empty_listing_is_one_empty_page() -> None:
    fetch = ScriptedFetch([{}])
    assert list(iter_pages(fetch, "devices")) == [
        Page(number=1, items=[], total_size=None, next_token=None)
    ]


def test_empty_last_page_without_token_is_fine() -> None:
    fetch = ScriptedFetch([{"devices": [1], "nextPageToken": "a"}, {"devices": []}])
    pages = list(iter_pages(fetch, "devices"))
    assert [p.items for p in pages] == [[1], []]


def test_items_key_is_respected() -> None:
    fetch = ScriptedFetch([{"devices": [1, 2], "customers": [9]}])
    assert [p.items for p in iter_pages(fetch, "customers")] == [[9]]


def collect_until_error(fetch: ScriptedFetch, **kwargs: Any) -> tuple[list[Page], ListingError]:
    """The pages yielded before the listing failed, and the failure."""
    pages: list[Page] = []
    with pytest.raises(ListingError) as info:
        pages.extend(iter_pages(fetch, "devices", **kwargs))
    return pages, info.value


def test_repeated_token_raises() -> None:
    fetch = ScriptedFetch(
        [
            {"devices": [1], "nextPageToken": "a"},
            {"devices": [2], "nextPageToken": "b"},
            {"devices": [3], "nextPageToken": "a"},
        ]
    )
    pages, error = collect_until_error(fetch)
    assert str(error) == "page 3 repeats an earlier nextPageToken"
    assert [p.number for p in pages] == [1, 2]  # the looping page itself is not yielded
    assert fetch.tokens == [None, "a", "b"]


def test_token_equal_to_the_one_just_sent_raises() -> None:
    fetch = ScriptedFetch(
        [{"devices": [1], "nextPageToken": "a"}, {"devices": [2], "nextPageToken": "a"}]
    )
    pages, error = collect_until_error(fetch)
    assert str(error) == "page 2 repeats an earlier nextPageToken"
    assert len(pages) == 1


def test_empty_page_with_a_token_raises() -> None:
    fetch = ScriptedFetch(
        [{"devices": [1], "nextPageToken": "a"}, {"devices": [], "nextPageToken": "b"}]
    )
    pages, error = collect_until_error(fetch)
    assert str(error) == "page 2 is empty but carries a nextPageToken"
    assert len(pages) == 1


def test_first_page_empty_with_a_token_raises() -> None:
    fetch = ScriptedFetch([{"nextPageToken": "a", "totalSize": 3}])
    pages, error = collect_until_error(fetch)
    assert str(error) == "page 1 is empty but carries a nextPageToken"
    assert pages == []


@pytest.mark.parametrize("items", [{"0": 1}, "devices", 3, None])
def test_items_that_are_not_a_list_raise(items: Any) -> None:
    fetch = ScriptedFetch([{"devices": items}])
    _, error = collect_until_error(fetch)
    assert str(error) == "page 1: devices is not a list"


@pytest.mark.parametrize("body", [[], [{"devices": [1]}], None, "page", 7])
def test_page_that_is_not_an_object_raises(body: Any) -> None:
    fetch = ScriptedFetch([{"devices": [1], "nextPageToken": "a"}, body])
    pages, error = collect_until_error(fetch)
    assert str(error) == "page 2 is not a JSON object"
    assert len(pages) == 1


@pytest.mark.parametrize("token", [7, ["a"], {"t": 1}, True])
def test_token_that_is_not_a_string_raises(token: Any) -> None:
    fetch = ScriptedFetch([{"devices": [1], "nextPageToken": token}])
    _, error = collect_until_error(fetch)
    assert str(error) == "page 1: nextPageToken is not a string"


def test_max_pages_exceeded_raises() -> None:
    fetch = ScriptedFetch([{"devices": [n], "nextPageToken": f"t{n}"} for n in range(10)])
    pages, error = collect_until_error(fetch, max_pages=3)
    assert str(error) == "listing did not end after 3 pages"
    assert [p.items for p in pages] == [[0], [1], [2]]
    assert fetch.tokens == [None, "t0", "t1"]


def test_exactly_max_pages_is_fine() -> None:
    fetch = ScriptedFetch(
        [
            {"devices": [1], "nextPageToken": "a"},
            {"devices": [2], "nextPageToken": "b"},
            {"devices": [3]},
        ]
    )
    assert [p.number for p in iter_pages(fetch, "devices", max_pages=3)] == [1, 2, 3]


def test_default_max_pages() -> None:
    assert MAX_PAGES == 1_000_000


@pytest.mark.parametrize(
    ("total", "expected"),
    [
        (5, 5),
        (0, 0),
        ("17", 17),
        ("0", 0),
        (None, None),
        (True, None),
        (False, None),
        (5.0, None),
        ("5.0", None),
        ("-3", None),
        ("many", None),
        ("", None),
        ([5], None),
    ],
)
def test_total_size_parsing(total: Any, expected: int | None) -> None:
    fetch = ScriptedFetch([{"devices": [1], "totalSize": total}])
    (page,) = iter_pages(fetch, "devices")
    assert page.total_size == expected
    assert page.total_size is None or type(page.total_size) is int


def test_total_size_absent_is_none() -> None:
    (page,) = iter_pages(ScriptedFetch([{"devices": [1]}]), "devices")
    assert page.total_size is None


def test_total_size_can_differ_between_pages() -> None:
    fetch = ScriptedFetch(
        [{"devices": [1], "nextPageToken": "a", "totalSize": 2}, {"devices": [2]}]
    )
    assert [p.total_size for p in iter_pages(fetch, "devices")] == [2, None]


def test_total_size_with_non_decimal_digit_characters() -> None:
    (page,) = iter_pages(ScriptedFetch([{"devices": [1], "totalSize": "\u00b2"}]), "devices")
    assert page.total_size is None
