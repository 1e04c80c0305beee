"""`$filter` on metadata collections (EntityDefinitions, Attributes, Keys).

Metadata queries accept only comparisons of a property (or a complex property's path such as
`AttributeTypeName/Value`) with a literal, joined by `and` / `or` / `not` and parentheses
(query-metadata-web-api.md: "you can only use `eq`, `ne`, `and`, `or`, `not` … on metadata").
Anything else is Dataverse's 400 `0x80060888`, never silently ignored.
"""

from __future__ import annotations

from collections.abc import Callable

from customer360.emulator import errors
from customer360.emulator.odata_filter import Token, tokenize

Predicate = Callable[[dict], bool]


def _syntax(message: str) -> errors.DataverseError:
    return errors.bad_request(message, errors.QUERY_NOT_SUPPORTED)


def _lookup(item: dict, path: str) -> object:
    value: object = item
    for part in path.split("/"):
        if not isinstance(value, dict):
            return None
        value = value.get(part)
    return value


def _same(left: object, right: object) -> bool:
    if isinstance(left, str) and isinstance(right, str):
        return left.casefold() == right.casefold()
    return left == right


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens = tokenize(text)
        self.pos = 0

    def _peek(self) -> Token | None:
        return self.tokens[self.pos] if self.pos < len(self.tokens) else None

    def _take(self) -> Token:
        token = self._peek()
        if token is None:
            raise _syntax(f"Expression expected at position {len(self.text)} in '{self.text}'.")
        self.pos += 1
        return token

    def _is_word(self, word: str) -> bool:
        token = self._peek()
        return token is not None and token.kind == "ident" and token.value == word

    def parse(self) -> Predicate:
        predicate = self._or()
        if self._peek() is not None:
            raise _syntax(f"Syntax error at position {self._peek().pos} in '{self.text}'.")
        return predicate

    def _or(self) -> Predicate:
        parts = [self._and()]
        while self._is_word("or"):
            self.pos += 1
            parts.append(self._and())
        return parts[0] if len(parts) == 1 else (lambda item: any(p(item) for p in parts))

    def _and(self) -> Predicate:
        parts = [self._unary()]
        while self._is_word("and"):
            self.pos += 1
            parts.append(self._unary())
        return parts[0] if len(parts) == 1 else (lambda item: all(p(item) for p in parts))

    def _unary(self) -> Predicate:
        if self._is_word("not"):
            self.pos += 1
            inner = self._unary()
            return lambda item: not inner(item)
        token = self._take()
        if token.kind == "punct" and token.value == "(":
            inner = self._or()
            close = self._take()
            if close.kind != "punct" or close.value != ")":
                raise _syntax(f"')' expected at position {close.pos} in '{self.text}'.")
            return inner
        if token.kind != "ident":
            raise _syntax(f"Syntax error at position {token.pos} in '{self.text}'.")
        return self._comparison(str(token.value))

    def _comparison(self, path: str) -> Predicate:
        op = self._take()
        if op.kind != "ident" or op.value not in ("eq", "ne"):
            raise _syntax(
                f"The operator at position {op.pos} in '{self.text}' is not supported on "
                "metadata: only 'eq' and 'ne' comparisons with 'and', 'or' and 'not' are."
            )
        literal = self._take()
        nxt = self._peek()
        if literal.kind == "ident" and nxt is not None and nxt.kind == "literal":
            # An enum literal: `Microsoft.Dynamics.CRM.AttributeTypeCode'Picklist'`.
            literal = self._take()
        if literal.kind != "literal":
            raise _syntax(f"A literal was expected at position {literal.pos} in '{self.text}'.")
        wanted = literal.value.value  # type: ignore[union-attr]
        if op.value == "eq":
            return lambda item: _same(_lookup(item, path), wanted)
        return lambda item: not _same(_lookup(item, path), wanted)


def compile_metadata_filter(text: str) -> Predicate:
    """Compile a metadata `$filter` into a predicate over metadata dictionaries."""
    return _Parser(text).parse()
