"""A tiny, safe expression language for ``flinktrade optimize --where`` constraints.

``fast < slow``, ``slow - fast >= 10 and fast % 5 == 0``, ``not (a == 1 or b > 2 * a)``: numbers,
parameter names, ``+ - * / // %``, unary ``-``/``+``, comparisons (chained as in Python:
``5 <= fast < slow``), ``and``/``or``/``not`` and parentheses. Nothing else: no attribute access,
no calls, no strings, and never ``eval``. ``Expression.parse`` checks the syntax and the names
once; ``evaluate`` gives a number or a bool for one parameter set.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass

from flinktrade.errors import ConfigError

Value = int | float | bool
Node = Callable[[Mapping[str, Value]], Value]

_TOKEN = re.compile(
    r"\s*(?:(?P<num>\d+\.\d*(?:[eE][+-]?\d+)?|\.\d+(?:[eE][+-]?\d+)?|\d+(?:[eE][+-]?\d+)?)"
    r"|(?P<name>[A-Za-z_][A-Za-z_0-9]*)|(?P<op>//|<=|>=|==|!=|[-+*/%<>()]))"
)
_COMPARE: dict[str, Callable[[Value, Value], bool]] = {
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
    "==": operator.eq,
    "!=": operator.ne,
}
_ARITH: dict[str, Callable[[Value, Value], Value]] = {
    "+": operator.add,
    "-": operator.sub,
    "*": operator.mul,
    "/": operator.truediv,
    "//": operator.floordiv,
    "%": operator.mod,
}
_KEYWORDS = {"and", "or", "not", "true", "false"}


@dataclass(frozen=True)
class Expression:
    text: str
    names: frozenset[str]
    _root: Node

    @classmethod
    def parse(cls, text: str, allowed: Collection[str]) -> Expression:
        """Parse ``text``; every name in it must be one of ``allowed``. Raises ``ConfigError``."""
        tokens = _tokenize(text)
        parser = _Parser(text, tokens, frozenset(allowed))
        root = parser.expression()
        if parser.position < len(tokens):
            raise parser.error(f"unexpected {tokens[parser.position][1]!r}")
        return cls(text, frozenset(parser.used), root)

    def evaluate(self, values: Mapping[str, Value]) -> Value:
        """The value for one parameter set; a division by zero is a ``ConfigError``."""
        try:
            return self._root(values)
        except ZeroDivisionError:
            shown = ", ".join(f"{k}={values[k]}" for k in sorted(self.names))
            raise ConfigError(f"--where {self.text!r}: division by zero at {shown}") from None

    def holds(self, values: Mapping[str, Value]) -> bool:
        return bool(self.evaluate(values))


def _tokenize(text: str) -> list[tuple[str, str]]:
    tokens: list[tuple[str, str]] = []
    position = 0
    stripped = text.rstrip()
    while position < len(stripped):
        match = _TOKEN.match(stripped, position)
        if match is None or match.end() == position:
            bad = stripped[position:].lstrip()[:1]
            raise ConfigError(f"--where {text!r}: unexpected character {bad!r}")
        kind = match.lastgroup or "op"
        tokens.append((kind, match.group(kind)))
        position = match.end()
    if not tokens:
        raise ConfigError("--where: empty expression")
    return tokens


class _Parser:
    """Recursive descent, one method per precedence level; returns closures, not an AST."""

    def __init__(self, text: str, tokens: list[tuple[str, str]], allowed: frozenset[str]) -> None:
        self.text, self.tokens, self.allowed = text, tokens, allowed
        self.position = 0
        self.used: set[str] = set()

    def error(self, what: str) -> ConfigError:
        return ConfigError(f"--where {self.text!r}: {what}")

    def peek(self) -> str | None:
        if self.position < len(self.tokens):
            return self.tokens[self.position][1]
        return None

    def take(self) -> tuple[str, str]:
        if self.position >= len(self.tokens):
            raise self.error("unexpected end")
        token = self.tokens[self.position]
        self.position += 1
        return token

    def expression(self) -> Node:
        left = self.conjunction()
        while self.peek() == "or":
            self.take()
            right = self.conjunction()
            left = _or(left, right)
        return left

    def conjunction(self) -> Node:
        left = self.negation()
        while self.peek() == "and":
            self.take()
            right = self.negation()
            left = _and(left, right)
        return left

    def negation(self) -> Node:
        if self.peek() == "not":
            self.take()
            inner = self.negation()
            return lambda v: not inner(v)
        return self.comparison()

    def comparison(self) -> Node:
        first = self.sum()
        pairs: list[tuple[Callable[[Value, Value], bool], Node]] = []
        while (op := self.peek()) in _COMPARE:
            self.take()
            pairs.append((_COMPARE[str(op)], self.sum()))
        if not pairs:
            return first
        return _chain(first, pairs)

    def sum(self) -> Node:
        left = self.term()
        while (op := self.peek()) in ("+", "-"):
            self.take()
            left = _binary(_ARITH[str(op)], left, self.term())
        return left

    def term(self) -> Node:
        left = self.unary()
        while (op := self.peek()) in ("*", "/", "//", "%"):
            self.take()
            left = _binary(_ARITH[str(op)], left, self.unary())
        return left

    def unary(self) -> Node:
        if self.peek() in ("-", "+"):
            sign = self.take()[1]
            inner = self.unary()
            return (lambda v: -inner(v)) if sign == "-" else inner
        return self.atom()

    def atom(self) -> Node:
        kind, text = self.take()
        if kind == "num":
            number: Value = float(text) if any(c in text for c in ".eE") else int(text)
            return lambda _v: number
        if kind == "name":
            if text in ("true", "false"):
                flag = text == "true"
                return lambda _v: flag
            if text in _KEYWORDS:
                raise self.error(f"unexpected {text!r}")
            if text not in self.allowed:
                known = ", ".join(sorted(self.allowed)) or "none"
                raise self.error(f"unknown name {text!r} (parameters: {known})")
            self.used.add(text)
            return lambda v: v[text]
        if text == "(":
            inner = self.expression()
            if self.peek() != ")":
                raise self.error("missing ')'")
            self.take()
            return inner
        raise self.error(f"unexpected {text!r}")


def _or(left: Node, right: Node) -> Node:
    return lambda v: bool(left(v)) or bool(right(v))


def _and(left: Node, right: Node) -> Node:
    return lambda v: bool(left(v)) and bool(right(v))


def _binary(op: Callable[[Value, Value], Value], left: Node, right: Node) -> Node:
    return lambda v: op(left(v), right(v))


def _chain(first: Node, pairs: list[tuple[Callable[[Value, Value], bool], Node]]) -> Node:
    def compare(values: Mapping[str, Value]) -> bool:
        left = first(values)
        for op, node in pairs:
            right = node(values)
            if not op(left, right):
                return False
            left = right
        return True

    return compare
