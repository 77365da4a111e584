"""Reading and editing a function_app.py's source for ``durafn new``, through its syntax tree.

``definitions`` finds the names, function names and routes a module defines; ``add_imports``
merges import statements in, in the order ruff's isort rules expect, without duplicating any.
"""

from __future__ import annotations

import ast
import sys
from dataclasses import dataclass, field

_TRIGGERS = frozenset(
    {
        "route",
        "schedule",
        "timer_trigger",
        "orchestrator",
        "orchestration_trigger",
        "activity",
        "activity_trigger",
        "entity",
        "entity_trigger",
        "function_name",
        "durable_client_input",
    }
)
# keyword arguments of the decorators that rename a function
_NAME_KEYWORDS = ("name", "orchestration", "activity", "entity_name")


@dataclass
class Definitions:
    """What a module defines at top level, each with its line: Python names, registered function
    names (lower case, as durafn compares them) and HTTP routes.
    """

    names: dict[str, int] = field(default_factory=dict)
    functions: dict[str, int] = field(default_factory=dict)
    routes: dict[str, int] = field(default_factory=dict)


def _decorator_calls(node: ast.FunctionDef | ast.AsyncFunctionDef) -> list[tuple[str, ast.expr]]:
    found = []
    for decorator in node.decorator_list:
        target = decorator.func if isinstance(decorator, ast.Call) else decorator
        if isinstance(target, ast.Attribute) and target.attr in _TRIGGERS:
            found.append((target.attr, decorator))
    return found


def _string(node: ast.expr | None) -> str | None:
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    return None


def _function(node: ast.FunctionDef | ast.AsyncFunctionDef, into: Definitions) -> None:
    decorators = _decorator_calls(node)
    if not decorators:
        return
    name = node.name
    route: str | None = None
    for attr, decorator in decorators:
        if not isinstance(decorator, ast.Call):
            continue
        keywords = {k.arg: k.value for k in decorator.keywords if k.arg}
        first = decorator.args[0] if decorator.args else None
        if attr == "function_name":
            name = _string(first) or name
        for key in _NAME_KEYWORDS:
            name = _string(keywords.get(key)) or name
        if attr == "route":
            route = _string(keywords.get("route")) or _string(first)
    into.functions.setdefault(name.lower(), node.lineno)
    if any(attr == "route" for attr, _ in decorators):
        # a route defaults to the function's name
        into.routes.setdefault((route if route is not None else name).strip("/"), node.lineno)


def definitions(tree: ast.Module) -> Definitions:
    """The top-level names, durafn function names and routes of a module."""
    found = Definitions()
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            found.names.setdefault(node.name, node.lineno)
            if not isinstance(node, ast.ClassDef):
                _function(node, found)
        elif isinstance(node, (ast.Assign, ast.AnnAssign, ast.AugAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for target in targets:
                for name in ast.walk(target):
                    if isinstance(name, ast.Name):
                        found.names.setdefault(name.id, node.lineno)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            for alias in node.names:
                bound = alias.asname or alias.name.split(".")[0]
                found.names.setdefault(bound, node.lineno)
    return found


def import_statements(source: str, nodes: list[ast.stmt]) -> list[str]:
    """The source of each import statement among ``nodes``."""
    return [
        ast.get_source_segment(source, node) or ""
        for node in nodes
        if isinstance(node, (ast.Import, ast.ImportFrom))
    ]


def _module(node: ast.Import | ast.ImportFrom) -> str:
    if isinstance(node, ast.ImportFrom):
        return "." * node.level + (node.module or "")
    return node.names[0].name


def _key(node: ast.Import | ast.ImportFrom) -> tuple[int, int, str]:
    """The isort order: future, stdlib, then the rest; ``import x`` before ``from x import y``."""
    module = _module(node)
    top = module.split(".")[0]
    if top == "__future__":
        section = 0
    elif top in sys.stdlib_module_names:
        section = 1
    else:
        section = 2 if not module.startswith(".") else 3
    return section, int(isinstance(node, ast.ImportFrom)), module.lower()


def _name_key(name: str) -> tuple[int, str]:
    # ruff's order-by-type: CONSTANTS, then Classes, then everything else
    if name.isupper() and len(name) > 1:
        return 0, name
    return (1, name) if name[:1].isupper() else (2, name.lower())


def _leading_imports(tree: ast.Module) -> list[ast.Import | ast.ImportFrom]:
    found: list[ast.Import | ast.ImportFrom] = []
    for index, node in enumerate(tree.body):
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            found.append(node)
        elif not (index == 0 and isinstance(node, ast.Expr) and _string(node.value) is not None):
            break
    return found


def _has(imports: list[ast.Import | ast.ImportFrom], wanted: ast.Import | ast.ImportFrom) -> bool:
    alias = wanted.names[0]
    for node in imports:
        if type(node) is not type(wanted) or _module(node) != _module(wanted):
            continue
        if any((a.name, a.asname) == (alias.name, alias.asname) for a in node.names):
            return True
    return False


def _add_one(source: str, statement: ast.Import | ast.ImportFrom) -> str:
    tree = ast.parse(source)
    lines = source.splitlines()
    imports = _leading_imports(tree)
    if _has(imports, statement):
        return source
    alias = statement.names[0]
    spelled = alias.name + (f" as {alias.asname}" if alias.asname else "")
    if isinstance(statement, ast.ImportFrom):
        for node in imports:
            one_line = node.lineno == node.end_lineno and "(" not in lines[node.lineno - 1]
            if (
                isinstance(node, ast.ImportFrom)
                and _module(node) == _module(statement)
                and one_line
            ):
                names = [a.name + (f" as {a.asname}" if a.asname else "") for a in node.names]
                merged = sorted({*names, spelled}, key=_name_key)
                lines[node.lineno - 1] = f"from {_module(node)} import {', '.join(merged)}"
                return "\n".join(lines) + "\n"
        text = f"from {_module(statement)} import {spelled}"
    else:
        text = f"import {spelled}"
    key = _key(statement)
    same = [node for node in imports if _key(node)[0] == key[0]]
    if same:
        after = next((node for node in same if _key(node) > key), None)
        at = after.lineno - 1 if after else (same[-1].end_lineno or same[-1].lineno)
        insert = [text]
    elif imports:
        later = next((node for node in imports if _key(node)[0] > key[0]), None)
        if later is not None:
            at, insert = later.lineno - 1, [text, ""]
        else:
            at, insert = imports[-1].end_lineno or imports[-1].lineno, ["", text]
    elif tree.body and isinstance(tree.body[0], ast.Expr) and _string(tree.body[0].value):
        at, insert = tree.body[0].end_lineno or 1, ["", text]
    else:
        at, insert = 0, [text, ""]
    lines[at:at] = insert
    return "\n".join(lines) + "\n"


def add_imports(source: str, statements: list[str]) -> str:
    """``source`` with each import statement in ``statements`` added unless already present."""
    for statement in statements:
        for node in ast.parse(statement).body:
            if not isinstance(node, (ast.Import, ast.ImportFrom)):
                continue
            # one name at a time, so that each lands where isort would put it
            for alias in node.names:
                single: ast.Import | ast.ImportFrom
                if isinstance(node, ast.ImportFrom):
                    single = ast.ImportFrom(module=node.module, names=[alias], level=node.level)
                else:
                    single = ast.Import(names=[alias])
                source = _add_one(source, single)
    return source
