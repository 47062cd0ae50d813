"""Relay connections: `edges { cursor node }` and `pageInfo { hasNextPage endCursor }`."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Generic, TypeVar

import strawberry

from resolvers.pagination import Page

T = TypeVar("T")


@strawberry.type
class PageInfo:
    has_next_page: bool
    end_cursor: str | None


@strawberry.type
class Edge(Generic[T]):
    cursor: str
    node: T


@strawberry.type
class Connection(Generic[T]):
    edges: list[Edge[T]]
    page_info: PageInfo


def connection(page: Page[Any], node: Callable[[Any], Any] | None = None) -> Any:
    """The connection of a page, each item mapped to its GraphQL type by `node`."""
    nodes = [node(item) for item in page.items] if node else page.items
    edges = [Edge(cursor=c, node=item) for c, item in zip(page.cursors, nodes, strict=True)]
    end = page.cursors[-1] if page.cursors else None
    return Connection(edges=edges, page_info=PageInfo(has_next_page=page.has_next, end_cursor=end))
