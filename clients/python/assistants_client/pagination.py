"""Every item of a list call, across pages.

Lists page as OpenAI's do: a page holds `data`, `last_id` and `has_more`, and the next page is
the one `after` the last id, in the same order.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from typing import Protocol, TypeVar

T_co = TypeVar("T_co", covariant=True)
T = TypeVar("T")

DEFAULT_PAGE_SIZE = 100
"""The largest page the service serves: the fewest calls for a whole list."""


class Page(Protocol[T_co]):
    """What the List responses have in common."""

    @property
    def data(self) -> Sequence[T_co]: ...
    @property
    def last_id(self) -> str: ...
    @property
    def has_more(self) -> bool: ...


def iterate(fetch: Callable[[str], Page[T]], after: str = "") -> Iterator[T]:
    """Yields the items of the pages `fetch(after)` returns, following `last_id`."""
    while True:
        page = fetch(after)
        yield from page.data
        if not page.has_more or not page.last_id:
            return
        after = page.last_id


async def aiterate(fetch: Callable[[str], Awaitable[Page[T]]], after: str = "") -> AsyncIterator[T]:
    """The async form of `iterate`."""
    while True:
        page = await fetch(after)
        for item in page.data:
            yield item
        if not page.has_more or not page.last_id:
            return
        after = page.last_id
