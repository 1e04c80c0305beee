"""OData 4.0 literal escaping and URL building for the Dataverse Web API.

Every value that goes into a URL (key segments, `$filter` literals, `In` parameter arrays) is
escaped here and nowhere else: single quotes are doubled (OData literal rule) and everything
outside the unreserved set is percent-encoded, so a business key such as `O'Brien/50% & co`
can neither break the URL nor change the query.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from decimal import Decimal
from typing import TypeVar
from urllib.parse import quote

#: Plain GET URLs are limited to 32,768 characters (reference/dataverse.md §4.1).
MAX_GET_URL_LENGTH = 32_768

KeyValue = str | int | Decimal | uuid.UUID | bool
T = TypeVar("T")


def percent_encode(text: str) -> str:
    """Percent-encode everything but RFC 3986 unreserved characters (UTF-8 for non-ASCII)."""
    return quote(text, safe="")


def string_literal(value: str) -> str:
    """An OData string literal: single-quoted, embedded quotes doubled (not percent-encoded)."""
    return "'" + value.replace("'", "''") + "'"


def key_literal(value: KeyValue) -> str:
    """The literal for one key part: GUIDs and numbers bare, strings quoted."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, int | Decimal):
        return str(value)
    if isinstance(value, float):
        raise TypeError("float key values are ambiguous; use int, Decimal or str")
    return string_literal(str(value))


def key_segment(key: Mapping[str, KeyValue] | uuid.UUID | str) -> str:
    """The text inside `entityset(...)`, percent-encoded for use in a URL path.

    A UUID (or a GUID string passed as `uuid.UUID`) gives the bare primary-key form; a mapping
    gives `name='value',other=2` (alternate key, one or more parts, sorted for stability).
    Quotes are doubled first, then each literal is percent-encoded except its delimiting quotes,
    so `,` `=` `/` `?` `#` `%` `&` inside a value can never be read as syntax.
    """
    if isinstance(key, uuid.UUID):
        return str(key)
    if isinstance(key, str):
        return str(uuid.UUID(key))
    if not key:
        raise ValueError("a key needs at least one column")
    if len(key) == 1:  # the common case: one column, nothing to sort
        ((name, value),) = key.items()
        return f"{name}={_encode_literal(key_literal(value))}"
    parts = []
    for name in sorted(key):
        literal = key_literal(key[name])
        parts.append(f"{name}={_encode_literal(literal)}")
    return ",".join(parts)


_PLAIN = re.compile(r"[A-Za-z0-9_.~-]*")  # unreserved: percent-encoding leaves it as it is


def _encode_literal(literal: str) -> str:
    if _PLAIN.fullmatch(literal):  # numbers, GUIDs: the common case, nothing to encode
        return literal
    if len(literal) >= 2 and literal.startswith("'") and literal.endswith("'"):
        # keep the delimiting and the doubled quotes readable; encode all else
        return "'" + quote(literal[1:-1], safe="'") + "'"
    return quote(literal, safe="")


def record_path(entity_set: str, key: Mapping[str, KeyValue] | uuid.UUID | str) -> str:
    """A record reference relative to the service root: `entityset(<key segment>)`."""
    return f"{entity_set}({key_segment(key)})"


def filter_eq(column: str, value: KeyValue | None) -> str:
    """One `column eq literal` comparison (unencoded: pass the whole `$filter` through
    :func:`query_string`)."""
    if value is None:
        return f"{column} eq null"
    return f"{column} eq {key_literal(value)}"


def in_filter(column: str) -> str:
    """`Microsoft.Dynamics.CRM.In` with parameter aliases @p1 (name) and @p2 (values)."""
    del column  # the name travels in @p1 so the filter text stays constant
    return "Microsoft.Dynamics.CRM.In(PropertyName=@p1,PropertyValues=@p2)"


def in_parameters(column: str, values: Sequence[KeyValue]) -> dict[str, str]:
    """The alias values for :func:`in_filter`: `@p1='col'`, `@p2=["v1","v2"]` (JSON strings)."""
    return {
        "@p1": string_literal(column),
        "@p2": json.dumps([str(v) for v in values], ensure_ascii=False, separators=(",", ":")),
    }


def or_filter(keys: Sequence[Mapping[str, KeyValue]]) -> str:
    """`(a eq 'x' and b eq 1) or (...)`: the fallback for composite keys (In takes one column)."""
    clauses = []
    for key in keys:
        terms = " and ".join(filter_eq(name, key[name]) for name in sorted(key))
        clauses.append(f"({terms})" if len(key) > 1 else terms)
    return " or ".join(clauses)


def query_string(params: Mapping[str, str]) -> str:
    """Join query options, percent-encoding each value completely (names stay as given)."""
    return "&".join(f"{name}={percent_encode(value)}" for name, value in params.items())


def in_value_cost(value: KeyValue) -> int:
    """Characters one value adds to a percent-encoded `@p2` array (value plus its comma)."""
    return len(percent_encode(json.dumps(str(value), ensure_ascii=False))) + len("%2C")


def or_clause_cost(key: Mapping[str, KeyValue]) -> int:
    """Characters one key adds to a percent-encoded OR-chain filter (clause plus ` or `)."""
    return len(percent_encode(or_filter([key]))) + len("%20or%20")


def chunk_by_budget(
    items: Iterable[T],
    base_length: int,
    item_cost: Callable[[T], int],
    max_length: int = MAX_GET_URL_LENGTH,
    max_items: int = 5_000,
) -> Iterator[list[T]]:
    """Group items so that `base_length + sum(item_cost)` stays within `max_length`.

    Used to keep key-lookup URLs under the 32 KB limit: `base_length` is the URL with an empty
    value list, `item_cost` what one more value adds once encoded.
    """
    chunk: list[T] = []
    length = base_length
    for item in items:
        cost = item_cost(item)
        if base_length + cost > max_length:
            raise ValueError(f"a single key value makes a URL longer than {max_length}: {item!r}")
        if chunk and (length + cost > max_length or len(chunk) >= max_items):
            yield chunk
            chunk, length = [], base_length
        chunk.append(item)
        length += cost
    if chunk:
        yield chunk
