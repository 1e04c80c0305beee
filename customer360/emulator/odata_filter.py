"""The `$filter` subset Dataverse supports for a publisher (reference §10.1 item 8).

Comparisons (`eq ne gt ge lt le`), `and`/`or`/`not`, parentheses, `contains`, `startswith`,
`endswith`, `Microsoft.Dynamics.CRM.In` / `NotIn` (PropertyName, PropertyValues), parameter
aliases (`@p1`), column-to-column comparison, `_x_value` lookup columns. String comparisons are
case-insensitive, as on Dataverse's SQL collation. The expression compiles to a Python predicate.
"""

from __future__ import annotations

import json
import operator
import re
from collections.abc import Callable
from dataclasses import dataclass

from customer360.emulator import errors
from customer360.emulator.odata_literals import (
    GUID_RE,
    Literal,
    LiteralError,
    read_literal,
    read_string,
)
from customer360.emulator.schema import STRING_TYPES, Column, Table
from customer360.emulator.values import coerce_literal

Predicate = Callable[[dict], bool]
IDENT_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_./]*")
COMPARISONS = {
    "eq": operator.eq,
    "ne": operator.ne,
    "gt": operator.gt,
    "ge": operator.ge,
    "lt": operator.lt,
    "le": operator.le,
}
IN_FUNCTIONS = ("Microsoft.Dynamics.CRM.In", "Microsoft.Dynamics.CRM.NotIn")
STRING_FUNCTIONS = ("contains", "startswith", "endswith")


def _syntax(message: str) -> errors.DataverseError:
    return errors.bad_request(message, errors.QUERY_NOT_SUPPORTED)


@dataclass
class Token:
    kind: str  # punct | string | literal | ident | alias | list
    value: object
    pos: int


def tokenize(text: str) -> list[Token]:
    tokens: list[Token] = []
    i = 0
    n = len(text)
    while i < n:
        ch = text[i]
        if ch.isspace():
            i += 1
            continue
        if ch in "()[],=":
            tokens.append(Token("punct", ch, i))
            i += 1
            continue
        if ch == "'":
            try:
                value, end = read_string(text, i)
            except LiteralError as exc:
                raise _syntax(str(exc)) from None
            tokens.append(Token("literal", Literal("string", value), i))
            i = end
            continue
        if ch == '"':
            end = i + 1
            while end < n and text[end] != '"':
                end += 2 if text[end] == "\\" else 1
            if end >= n:
                raise _syntax(f"There is an unterminated literal at position {i} in '{text}'.")
            tokens.append(Token("literal", Literal("string", json.loads(text[i : end + 1])), i))
            i = end + 1
            continue
        if ch == "@":
            match = IDENT_RE.match(text, i + 1)
            if not match:
                raise _syntax(f"Syntax error at position {i} in '{text}'.")
            tokens.append(Token("alias", match.group(0), i))
            i = match.end()
            continue
        guid = GUID_RE.match(text, i)
        if ch.isdigit() or ch == "-" or guid:
            try:
                literal, end = read_literal(text, i)
            except LiteralError as exc:
                raise _syntax(str(exc)) from None
            tokens.append(Token("literal", literal, i))
            i = end
            continue
        match = IDENT_RE.match(text, i)
        if not match:
            raise _syntax(f"Syntax error at position {i} in '{text}'.")
        word = match.group(0)
        if word in ("true", "false", "null"):
            literal, end = read_literal(text, i)
            tokens.append(Token("literal", literal, i))
        else:
            tokens.append(Token("ident", word, i))
        i = match.end()
    return tokens


class FilterCompiler:
    """Parse `$filter` text for one table and return a row predicate."""

    def __init__(self, table: Table, text: str, aliases: dict[str, str]) -> None:
        self.table = table
        self.text = text
        self.aliases = aliases
        self.tokens = tokenize(text)
        self.pos = 0

    # ---- token helpers ----------------------------------------------------------------------
    def _peek(self) -> Token | None:
        return self.tokens[self.pos] if self.pos < len(self.tokens) else None

    def _next(self) -> Token:
        token = self._peek()
        if token is None:
            raise _syntax(f"Expression expected at position {len(self.text)} in '{self.text}'.")
        self.pos += 1
        return token

    def _expect(self, punct: str) -> None:
        token = self._next()
        if token.kind != "punct" or token.value != punct:
            raise _syntax(f"'{punct}' expected at position {token.pos} in '{self.text}'.")

    def _is_word(self, word: str) -> bool:
        token = self._peek()
        return token is not None and token.kind == "ident" and token.value == word

    # ---- grammar ------------------------------------------------------------------------------
    def compile(self) -> Predicate:
        predicate = self._or()
        token = self._peek()
        if token is not None:
            raise _syntax(f"Syntax error at position {token.pos} in '{self.text}'.")
        return predicate

    def _or(self) -> Predicate:
        left = self._and()
        while self._is_word("or"):
            self.pos += 1
            right = self._and()
            left = (lambda a, b: lambda row: a(row) or b(row))(left, right)
        return left

    def _and(self) -> Predicate:
        left = self._not()
        while self._is_word("and"):
            self.pos += 1
            right = self._not()
            left = (lambda a, b: lambda row: a(row) and b(row))(left, right)
        return left

    def _not(self) -> Predicate:
        if self._is_word("not"):
            self.pos += 1
            inner = self._not()
            return lambda row: not inner(row)
        return self._comparison()

    def _comparison(self) -> Predicate:
        token = self._peek()
        if token is not None and token.kind == "punct" and token.value == "(":
            self.pos += 1
            inner = self._or()
            self._expect(")")
            return inner
        left = self._operand()
        op_token = self._peek()
        if op_token is None or op_token.kind != "ident" or op_token.value not in COMPARISONS:
            if left[0] == "pred":
                return left[1]  # type: ignore[return-value]
            where = op_token.pos if op_token else len(self.text)
            raise _syntax(f"Comparison operator expected at position {where} in '{self.text}'.")
        self.pos += 1
        right = self._operand()
        return self._compare(str(op_token.value), left, right)

    def _operand(self) -> tuple[str, object]:
        """('col', Column) | ('lit', Literal) | ('pred', Predicate)."""
        token = self._next()
        if token.kind == "literal":
            return "lit", token.value
        if token.kind == "alias":
            return "lit", self._alias_literal(str(token.value))
        if token.kind == "ident":
            name = str(token.value)
            following = self._peek()
            if following is not None and following.kind == "punct" and following.value == "(":
                return "pred", self._function(name, token.pos)
            return "col", self._column(name)
        raise _syntax(f"Syntax error at position {token.pos} in '{self.text}'.")

    def _column(self, name: str) -> Column:
        column = self.table.query_names.get(name)
        if column is None:
            raise errors.property_not_found(name, self.table.logical_name)
        return column

    def _alias_text(self, name: str) -> str:
        key = f"@{name}"
        if key not in self.aliases:
            raise _syntax(f"The parameter alias '{key}' is not defined in the query.")
        return self.aliases[key]

    def _alias_literal(self, name: str) -> Literal:
        text = self._alias_text(name).strip()
        try:
            literal, end = read_literal(text, 0)
        except LiteralError as exc:
            raise _syntax(str(exc)) from None
        if end != len(text):
            raise _syntax(f"Syntax error in the value of parameter alias '@{name}'.")
        return literal

    # ---- functions ----------------------------------------------------------------------------
    def _function(self, name: str, pos: int) -> Predicate:
        self._expect("(")
        if name in STRING_FUNCTIONS:
            column_token = self._next()
            if column_token.kind != "ident":
                raise _syntax(f"A property is expected at position {column_token.pos}.")
            column = self._column(str(column_token.value))
            self._expect(",")
            value_token = self._next()
            literal = value_token.value
            if value_token.kind == "alias":
                literal = self._alias_literal(str(value_token.value))
            elif value_token.kind != "literal":
                raise _syntax(f"A literal is expected at position {value_token.pos}.")
            self._expect(")")
            assert isinstance(literal, Literal)
            if literal.kind != "string" or column.type not in STRING_TYPES:
                raise _syntax(f"'{name}' needs a string column and a string literal.")
            needle = str(literal.value).casefold()
            col = column.name
            if name == "contains":
                return lambda row: (v := row.get(col)) is not None and needle in v.casefold()
            if name == "startswith":
                return lambda row: (
                    (v := row.get(col)) is not None and v.casefold().startswith(needle)
                )
            return lambda row: (v := row.get(col)) is not None and v.casefold().endswith(needle)
        if name in IN_FUNCTIONS:
            args = self._named_args()
            if set(args) != {"PropertyName", "PropertyValues"}:
                raise _syntax(f"{name} needs the parameters PropertyName and PropertyValues.")
            prop = args["PropertyName"]
            if not isinstance(prop, Literal) or prop.kind != "string":
                raise _syntax(f"{name}: PropertyName must be a string.")
            column = self._column(str(prop.value))
            values = args["PropertyValues"]
            if not isinstance(values, list):
                raise _syntax(f"{name}: PropertyValues must be a collection.")
            allowed = {_fold(column, self._coerce_in_value(column, v)) for v in values}
            col = column.name
            if name.endswith(".In"):
                return lambda row: _fold(column, row.get(col)) in allowed
            return lambda row: _fold(column, row.get(col)) not in allowed
        raise _syntax(f"Unknown function '{name}' at position {pos} in '{self.text}'.")

    def _coerce_in_value(self, column: Column, value: Literal) -> object:
        if value.kind == "string" and column.type not in STRING_TYPES:
            try:
                reparsed, end = read_literal(str(value.value), 0)
            except LiteralError:
                reparsed, end = value, -1
            if end == len(str(value.value)):
                value = reparsed
        return coerce_literal(self.table, column, value)

    def _named_args(self) -> dict[str, object]:
        args: dict[str, object] = {}
        while True:
            name_token = self._next()
            if name_token.kind != "ident":
                raise _syntax(f"A parameter name is expected at position {name_token.pos}.")
            self._expect("=")
            args[str(name_token.value)] = self._arg_value()
            token = self._next()
            if token.kind == "punct" and token.value == ")":
                return args
            if not (token.kind == "punct" and token.value == ","):
                raise _syntax(f"',' or ')' expected at position {token.pos} in '{self.text}'.")

    def _arg_value(self) -> object:
        token = self._next()
        if token.kind == "literal":
            return token.value
        if token.kind == "alias":
            text = self._alias_text(str(token.value)).strip()
            if text.startswith("["):
                return _parse_list(text)
            return self._alias_literal(str(token.value))
        if token.kind == "punct" and token.value == "[":
            start = token.pos
            depth = 1
            while depth:
                inner = self._next()
                if inner.kind == "punct" and inner.value == "[":
                    depth += 1
                elif inner.kind == "punct" and inner.value == "]":
                    depth -= 1
            end_pos = self.tokens[self.pos - 1].pos
            return _parse_list(self.text[start : end_pos + 1])
        raise _syntax(f"A value is expected at position {token.pos} in '{self.text}'.")

    # ---- comparisons --------------------------------------------------------------------------
    def _compare(
        self, op_name: str, left: tuple[str, object], right: tuple[str, object]
    ) -> Predicate:
        op = COMPARISONS[op_name]
        ordered = op_name not in ("eq", "ne")
        if left[0] == "col" and right[0] == "lit":
            column = left[1]
            assert isinstance(column, Column)
            assert isinstance(right[1], Literal)
            value = _fold(column, coerce_literal(self.table, column, right[1]))
            return _column_vs_value(column.name, column, op, value, ordered, flip=False)
        if left[0] == "lit" and right[0] == "col":
            column = right[1]
            assert isinstance(column, Column)
            assert isinstance(left[1], Literal)
            value = _fold(column, coerce_literal(self.table, column, left[1]))
            return _column_vs_value(column.name, column, op, value, ordered, flip=True)
        if left[0] == "col" and right[0] == "col":
            a, b = left[1], right[1]
            assert isinstance(a, Column) and isinstance(b, Column)

            def both(row: dict) -> bool:
                x, y = _fold(a, row.get(a.name)), _fold(b, row.get(b.name))
                if ordered and (x is None or y is None):
                    return False
                return op(x, y)

            return both
        raise _syntax(f"Unsupported comparison in '{self.text}'.")


def _fold(column: Column, value: object) -> object:
    if isinstance(value, str) and column.type in STRING_TYPES:
        return value.casefold()
    return value


def _column_vs_value(
    name: str, column: Column, op: Callable, value: object, ordered: bool, flip: bool
) -> Predicate:
    is_string = column.type in STRING_TYPES
    if value is None:
        if ordered:
            return lambda row: False
        return lambda row: op(row.get(name), None)

    def predicate(row: dict) -> bool:
        current = row.get(name)
        if current is None:
            return op(None, value) if not ordered else False
        if is_string:
            current = current.casefold()
        return op(value, current) if flip else op(current, value)

    return predicate


def _parse_list(text: str) -> list[Literal]:
    """`["a","b"]` (JSON) or `['a','b']` (OData) → literals."""
    try:
        values = json.loads(text)
        return [
            Literal("string", v) if isinstance(v, str) else read_literal(json.dumps(v), 0)[0]
            for v in values
        ]
    except (json.JSONDecodeError, LiteralError):
        pass
    inner = text.strip()[1:-1]
    out: list[Literal] = []
    i = 0
    while i < len(inner):
        if inner[i] in " ,":
            i += 1
            continue
        try:
            literal, i = read_literal(inner, i)
        except LiteralError as exc:
            raise _syntax(str(exc)) from None
        out.append(literal)
    return out


def compile_filter(table: Table, text: str, aliases: dict[str, str]) -> Predicate:
    return FilterCompiler(table, text, aliases).compile()
