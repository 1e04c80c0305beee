"""`GET <set>?sql=SELECT …`: Dataverse's read-only SQL subset over the Web API.

Supported: `SELECT [DISTINCT] [TOP n] col, … | * FROM table [[AS] alias] [WHERE …]
[ORDER BY col [ASC|DESC], …]` where the WHERE clause compares a column with a literal
(`= <> != < <= > >=`), `[NOT] LIKE`, `[NOT] IN (…)`, `IS [NOT] NULL`, `[NOT] BETWEEN … AND …`,
joined by AND / OR / NOT and parentheses. Joins, aggregates, sub-queries and anything that
writes get Dataverse's 400 `0x80060888`, never a silently different answer. Results hold the
selected columns under their logical names; more than 5,000 rows page with `@odata.nextLink`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal

from customer360.emulator import errors
from customer360.emulator.readplan import (
    Condition,
    Plan,
    all_of,
    any_of,
    column_of,
    condition,
    query_error,
)
from customer360.emulator.schema import Table

TOKEN_RE = re.compile(
    r"\s*(?:(?P<string>N?'(?:[^']|'')*')|(?P<number>-?\d+(?:\.\d+)?)"
    r"|(?P<name>\[[^\]]+\]|[A-Za-z_][A-Za-z0-9_]*(?:\.(?:\[[^\]]+\]|[A-Za-z_][A-Za-z0-9_]*))?)"
    r"|(?P<op><>|!=|<=|>=|=|<|>)|(?P<punct>[(),*;]))"
)
UNSUPPORTED = {"JOIN", "GROUP", "HAVING", "UNION", "INSERT", "UPDATE", "DELETE", "INTO", "OFFSET"}
COMPARISONS = {"=": "eq", "<>": "ne", "!=": "ne", "<": "lt", "<=": "le", ">": "gt", ">=": "ge"}


@dataclass
class Tok:
    kind: str
    text: str

    @property
    def word(self) -> str:
        return self.text.upper() if self.kind == "name" else ""


def tokenize(sql: str) -> list[Tok]:
    tokens: list[Tok] = []
    pos = 0
    text = sql.rstrip().rstrip(";")
    while pos < len(text):
        match = TOKEN_RE.match(text, pos)
        if not match or match.end() == pos:
            if text[pos:].strip() == "":
                break
            raise query_error(f"Incorrect syntax near '{text[pos : pos + 20]}' in the SQL query.")
        kind = match.lastgroup or ""
        tokens.append(Tok(kind, match.group(kind)))
        pos = match.end()
    return tokens


class _Parser:
    def __init__(self, table: Table, sql: str) -> None:
        self.table = table
        self.tokens = tokenize(sql)
        self.pos = 0
        self.alias = table.logical_name
        for token in self.tokens:
            if token.word in UNSUPPORTED or (
                token.word == "SELECT" and token is not self.tokens[0]
            ):
                raise query_error(
                    f"'{token.text}' is not supported by the Dataverse SQL endpoint emulation: "
                    "one read-only SELECT from one table."
                )

    def peek(self) -> Tok | None:
        return self.tokens[self.pos] if self.pos < len(self.tokens) else None

    def take(self) -> Tok:
        token = self.peek()
        if token is None:
            raise query_error("Incorrect syntax: the SQL query ended unexpectedly.")
        self.pos += 1
        return token

    def accept(self, word: str) -> bool:
        token = self.peek()
        if token is not None and token.word == word:
            self.pos += 1
            return True
        return False

    def expect(self, word: str) -> None:
        if not self.accept(word):
            token = self.peek()
            raise query_error(
                f"Incorrect syntax near '{token.text if token else ''}': {word} expected."
            )

    def column(self, text: str):
        name = text
        if "." in text:
            prefix, _, name = text.partition(".")
            if prefix.strip("[]").lower() not in (self.alias.lower(), self.table.logical_name):
                raise query_error(f"The multi-part identifier '{text}' could not be bound.")
        return column_of(self.table, name.strip("[]"))

    def parse(self) -> Plan:
        self.expect("SELECT")
        plan = Plan(self.table, [])
        plan.distinct = self.accept("DISTINCT")
        if self.accept("TOP"):
            token = self.take()
            if token.kind != "number" or not token.text.isdigit():
                raise query_error("TOP needs a whole number.")
            plan.top = int(token.text)
        names = self.select_list()
        self.expect("FROM")
        table_token = self.take()
        if table_token.text.strip("[]").lower() != self.table.logical_name:
            raise query_error(
                f"The SQL query reads '{table_token.text}', not the entity set's table "
                f"'{self.table.logical_name}'."
            )
        self.accept("AS")
        token = self.peek()
        if token is not None and token.kind == "name" and token.word not in ("WHERE", "ORDER"):
            self.alias = self.take().text.strip("[]")
        plan.columns = None if names is None else [self.column(n) for n in names]
        if self.accept("WHERE"):
            plan.condition = self.or_expr()
        if self.accept("ORDER"):
            self.expect("BY")
            while True:
                column = self.column(self.take().text)
                descending = self.accept("DESC")
                if not descending:
                    self.accept("ASC")
                plan.orders.append((None, column, descending))
                if not self._comma():
                    break
        if self.peek() is not None:
            raise query_error(f"Incorrect syntax near '{self.peek().text}' in the SQL query.")
        return plan

    def _comma(self) -> bool:
        token = self.peek()
        if token is not None and token.text == ",":
            self.pos += 1
            return True
        return False

    def select_list(self) -> list[str] | None:
        token = self.take()
        if token.text == "*":
            return None
        names = []
        while True:
            if token.kind != "name":
                raise query_error(f"Incorrect syntax near '{token.text}' in the select list.")
            nxt = self.peek()
            if nxt is not None and nxt.text == "(":
                raise query_error(
                    f"The function '{token.text}' is not supported by the local Dataverse SQL."
                )
            names.append(token.text)
            if not self._comma():
                return names
            token = self.take()

    def or_expr(self) -> Condition:
        parts = [self.and_expr()]
        while self.accept("OR"):
            parts.append(self.and_expr())
        return parts[0] if len(parts) == 1 else any_of(parts)

    def and_expr(self) -> Condition:
        parts = [self.not_expr()]
        while self.accept("AND"):
            parts.append(self.not_expr())
        return parts[0] if len(parts) == 1 else all_of(parts)

    def not_expr(self) -> Condition:
        if self.accept("NOT"):
            inner = self.not_expr()
            return lambda ctx: not inner(ctx)
        token = self.peek()
        if token is not None and token.text == "(":
            self.pos += 1
            inner = self.or_expr()
            if self.take().text != ")":
                raise query_error("Incorrect syntax: ')' expected in the SQL query.")
            return inner
        return self.predicate()

    def literal(self) -> object:
        token = self.take()
        if token.kind == "string":
            body = token.text[2:-1] if token.text.startswith("N") else token.text[1:-1]
            return body.replace("''", "'")
        if token.kind == "number":
            return Decimal(token.text) if "." in token.text else int(token.text)
        if token.word == "NULL":
            return None
        raise query_error(f"A literal was expected near '{token.text}' in the SQL query.")

    def predicate(self) -> Condition:
        column = self.column(self.take().text)
        negate = self.accept("NOT")
        if self.accept("LIKE"):
            return condition(None, column, "not-like" if negate else "like", [self.literal()])
        if self.accept("IN"):
            if self.take().text != "(":
                raise query_error("Incorrect syntax: '(' expected after IN.")
            values = [self.literal()]
            while self._comma():
                values.append(self.literal())
            if self.take().text != ")":
                raise query_error("Incorrect syntax: ')' expected after the IN list.")
            return condition(None, column, "not-in" if negate else "in", values)
        if self.accept("BETWEEN"):
            low = self.literal()
            self.expect("AND")
            return condition(
                None, column, "not-between" if negate else "between", [low, self.literal()]
            )
        if negate:
            raise query_error("Incorrect syntax near 'NOT' in the SQL query.")
        if self.accept("IS"):
            negated = self.accept("NOT")
            self.expect("NULL")
            return condition(None, column, "not-null" if negated else "null", [])
        op = self.take()
        if op.kind != "op":
            raise query_error(f"Incorrect syntax near '{op.text}' in the SQL query.")
        value = self.literal()
        if value is None:
            raise query_error("Compare with NULL using IS NULL / IS NOT NULL.")
        return condition(None, column, COMPARISONS[op.text], [value])


def parse(table: Table, sql: str) -> Plan:
    """SQL text → plan (raises Dataverse's 400 for anything outside the subset)."""
    if not sql.strip():
        raise errors.bad_request("The sql query option is empty.", errors.QUERY_NOT_SUPPORTED)
    return _Parser(table, sql).parse()
