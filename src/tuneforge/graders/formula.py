"""A multi grader's `calculate_output`: parsed with `ast` and evaluated over a whitelist — never `eval()`.

Allowed: numbers, the sub-graders' names, + - * /, ^ and ** (both power, as OpenAI writes `^`), unary + -,
parentheses, and min / max / abs / floor / ceil / exp / sqrt / log. `^` is read as `**` before parsing, so it
binds tighter than * and / as in mathematics (Python's own `^` would bind looser than +); a formula holds no
strings, so the replacement cannot change anything else. Everything is computed on floats, so no huge integers
can be built; a power's exponent is bounded (a constant one when parsing, any one when evaluating) and any
overflow, division by zero or non-finite result is an error, not a crash.
"""

from __future__ import annotations

import ast
import math
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from typing import Any

MAX_NODES = 256
MAX_DEPTH = 32
MAX_EXPONENT = 64.0

FUNCTIONS: dict[str, Callable[..., float]] = {
    "min": lambda *args: float(min(args)),
    "max": lambda *args: float(max(args)),
    "abs": lambda x: float(abs(x)),
    "floor": lambda x: float(math.floor(x)),
    "ceil": lambda x: float(math.ceil(x)),
    "exp": math.exp,
    "sqrt": math.sqrt,
    "log": math.log,
}
_ONE_ARGUMENT = {"abs", "floor", "ceil", "exp", "sqrt", "log"}
_BINARY: dict[type[ast.operator], Callable[[float, float], float]] = {
    ast.Add: lambda a, b: a + b,
    ast.Sub: lambda a, b: a - b,
    ast.Mult: lambda a, b: a * b,
    ast.Div: lambda a, b: a / b,
    ast.Pow: lambda a, b: _power(a, b),
}


class FormulaError(ValueError):
    """The formula is not one we evaluate, or evaluating it failed (division by zero, overflow, …)."""


@dataclass(frozen=True)
class Formula:
    text: str
    tree: ast.expr

    def evaluate(self, values: Mapping[str, float]) -> float:
        try:
            result = _evaluate(self.tree, values)
        except (ArithmeticError, ValueError) as exc:
            raise FormulaError(f"calculate_output failed: {exc}") from exc
        if not math.isfinite(result):
            raise FormulaError(f"calculate_output gave {result}")
        return result


def parse_formula(text: str, names: Collection[str]) -> Formula:
    """The checked formula; FormulaError names the first thing that is not allowed."""
    try:
        tree = ast.parse(text.strip().replace("^", "**"), mode="eval")
    except (SyntaxError, ValueError, RecursionError, MemoryError) as exc:
        raise FormulaError(f"not a formula: {getattr(exc, 'msg', exc)}") from None
    nodes = list(ast.walk(tree))
    if len(nodes) > MAX_NODES:
        raise FormulaError(f"formula is too long (over {MAX_NODES} parts)")
    if _depth(tree.body) > MAX_DEPTH:
        raise FormulaError(f"formula nests deeper than {MAX_DEPTH}")
    called = {id(node.func) for node in nodes if isinstance(node, ast.Call)}  # a function's name, not a variable
    for node in nodes:
        if id(node) not in called:
            _check_node(node, names)
    return Formula(text, tree.body)


def _check_node(node: ast.AST, names: Collection[str]) -> None:
    if isinstance(node, ast.Expression | ast.Load | ast.operator | ast.unaryop):
        if isinstance(node, ast.operator) and type(node) not in _BINARY:
            raise FormulaError(f"operator {type(node).__name__} is not allowed (use + - * / ^)")
        if isinstance(node, ast.unaryop) and not isinstance(node, ast.UAdd | ast.USub):
            raise FormulaError(f"operator {type(node).__name__} is not allowed")
    elif isinstance(node, ast.Constant):
        if isinstance(node.value, bool) or not isinstance(node.value, int | float):
            raise FormulaError(f"only numbers may appear as constants, not {node.value!r}")
    elif isinstance(node, ast.Name):
        if node.id not in names:
            raise FormulaError(f"unknown name {node.id!r}; the formula may use the sub-graders "
                               f"{sorted(names)} and the functions {sorted(FUNCTIONS)}")
    elif isinstance(node, ast.Call):
        _check_call(node)
    elif isinstance(node, ast.BinOp):
        if isinstance(node.op, ast.Pow) and not any(isinstance(n, ast.Name) for n in ast.walk(node.right)):
            _check_constant_exponent(node.right)
    elif not isinstance(node, ast.UnaryOp):
        raise FormulaError(f"{type(node).__name__} is not allowed in a formula "
                           f"(only numbers, names, + - * / ^, parentheses and {', '.join(FUNCTIONS)})")


def _check_call(node: ast.Call) -> None:
    if not isinstance(node.func, ast.Name) or node.func.id not in FUNCTIONS:
        raise FormulaError(f"only the functions {', '.join(FUNCTIONS)} may be called")
    if node.keywords or any(isinstance(arg, ast.Starred) for arg in node.args):
        raise FormulaError(f"{node.func.id}() takes plain arguments")
    count = len(node.args)
    if node.func.id in _ONE_ARGUMENT and count != 1:
        raise FormulaError(f"{node.func.id}() takes one argument, got {count}")
    if count == 0:
        raise FormulaError(f"{node.func.id}() needs at least one argument")


def _check_constant_exponent(node: ast.expr) -> None:
    """Refuse `9 ** 9 ** 9` when it is written, not only when it is first evaluated."""
    try:
        for part in ast.walk(node):
            _check_node(part, ())
        exponent = _evaluate(node, {})
    except (ArithmeticError, ValueError, KeyError) as exc:
        raise FormulaError(f"exponent is too large or invalid: {exc}") from None
    if abs(exponent) > MAX_EXPONENT:
        raise FormulaError(f"exponent {exponent:g} is too large (at most {MAX_EXPONENT:g})")


def _evaluate(node: ast.expr, values: Mapping[str, float]) -> float:
    if isinstance(node, ast.Constant) and isinstance(node.value, int | float):
        return float(node.value)
    if isinstance(node, ast.Name):
        return float(values[node.id])
    if isinstance(node, ast.UnaryOp):
        operand = _evaluate(node.operand, values)
        return -operand if isinstance(node.op, ast.USub) else operand
    if isinstance(node, ast.BinOp):
        return _BINARY[type(node.op)](_evaluate(node.left, values), _evaluate(node.right, values))
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
        return float(FUNCTIONS[node.func.id](*(_evaluate(arg, values) for arg in node.args)))
    raise FormulaError(f"{type(node).__name__} is not allowed")  # parse_formula lets none through


def _power(base: float, exponent: float) -> float:
    # a computed exponent is bounded too: 2 ^ (a * 1e9) must not take the process down with it
    if abs(exponent) > MAX_EXPONENT:
        raise ValueError(f"exponent {exponent:g} is too large (at most {MAX_EXPONENT:g})")
    result: Any = base**exponent
    if isinstance(result, complex):
        raise ValueError(f"{base:g} ^ {exponent:g} is not a real number")
    return float(result)


def _depth(node: ast.AST) -> int:
    children = list(ast.iter_child_nodes(node))
    return 1 + max((_depth(child) for child in children), default=0)
