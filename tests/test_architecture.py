"""Each layer imports only what the boundaries in ../shared/STYLE.md allow (checked with ast)."""

import ast
from pathlib import Path

import pytest

import durafn

PACKAGE = Path(durafn.__file__).resolve().parent

# module prefix -> durafn modules it must not import
FORBIDDEN_INTERNAL = {
    "durafn.errors": ["durafn"],
    "durafn.models": [
        "durafn.app",
        "durafn.client",
        "durafn.store",
        "durafn.runtime",
        "durafn.host",
    ],
    "durafn.serialization": [
        "durafn.app",
        "durafn.client",
        "durafn.store",
        "durafn.runtime",
        "durafn.host",
    ],
    "durafn.http": ["durafn.app", "durafn.client", "durafn.store", "durafn.runtime", "durafn.host"],
    "durafn.replay": [
        "durafn.app",
        "durafn.client",
        "durafn.store",
        "durafn.runtime",
        "durafn.host",
        "durafn.functions",
    ],
    "durafn.functions": ["durafn.store", "durafn.runtime", "durafn.host", "durafn.cli"],
    "durafn.discovery": ["durafn.store", "durafn.runtime", "durafn.host", "durafn.cli"],
    "durafn.store": ["durafn.app", "durafn.client", "durafn.runtime", "durafn.host", "durafn.cli"],
    "durafn.management": ["durafn.store", "durafn.runtime", "durafn.host"],
    "durafn.client": ["durafn.runtime", "durafn.host", "durafn.cli"],
    "durafn.runtime": ["durafn.host", "durafn.cli"],
    "durafn.host": [
        "durafn.cli",
        "durafn.store.sql",
        "durafn.store.schema",
        "durafn.store.sqlite",
        "durafn.store.postgres",
        "durafn.store.queries",
        "durafn.store.migrations",
    ],
}

# third-party framework -> the only module prefixes that may import it
FRAMEWORK_HOMES = {
    "sqlalchemy": ["durafn.store"],
    "sqlmodel": ["durafn.store"],
    "psycopg": ["durafn.store"],
    "starlette": ["durafn.host"],
    "uvicorn": ["durafn.host", "durafn.cli"],
    "click": ["durafn.cli"],
    "apscheduler": ["durafn.cron"],
}

# the replay core is pure: no event loop, no clock, no randomness
REPLAY_FORBIDDEN_MODULES = {"asyncio", "time", "random", "threading", "secrets"}
REPLAY_FORBIDDEN_CALLS = {"now", "utcnow", "today", "uuid1", "uuid4"}


def within(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + ".")


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def imports_of(tree: ast.AST, module: str) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = module.split(".")[: -node.level] if node.level else []
                found.add(".".join([*base, node.module or ""]).rstrip("."))
            elif node.module:
                found.add(node.module)
                found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return found


MODULES = sorted(PACKAGE.rglob("*.py"))


@pytest.mark.parametrize("path", MODULES, ids=lambda p: module_name(p))
def test_module_respects_the_boundaries(path: Path) -> None:
    module = module_name(path)
    tree = ast.parse(path.read_text(), filename=str(path))
    imported = imports_of(tree, module)
    problems = []
    for prefix, forbidden in FORBIDDEN_INTERNAL.items():
        if within(module, prefix):
            problems += [f"imports {n}" for n in imported for bad in forbidden if within(n, bad)]
    for framework, homes in FRAMEWORK_HOMES.items():
        uses = [n for n in imported if n == framework or n.startswith(framework + ".")]
        if uses and not any(within(module, home) for home in homes):
            problems.append(f"imports {framework}, which belongs in {' or '.join(homes)}")
    if module.startswith("durafn.replay"):
        problems += [
            f"imports {n}" for n in imported if n.split(".")[0] in REPLAY_FORBIDDEN_MODULES
        ]
        for node in ast.walk(tree):
            if isinstance(node, ast.Attribute) and node.attr in REPLAY_FORBIDDEN_CALLS:
                problems.append(f"uses .{node.attr} (line {node.lineno})")
            if isinstance(node, ast.alias) and node.name in REPLAY_FORBIDDEN_CALLS:
                problems.append(f"imports {node.name}")
    assert not problems, f"{module}: " + "; ".join(sorted(set(problems)))


def test_public_api_is_pinned() -> None:
    names = durafn.__all__
    assert names == sorted(names)
    assert len(names) == len(set(names))
    for name in names:
        obj = getattr(durafn, name)
        if isinstance(obj, type):
            assert obj.__module__ == "durafn", name
            assert obj.__doc__, f"{name} has no docstring"
    for must in (
        "App",
        "DFApp",
        "Blueprint",
        "AuthLevel",
        "HttpRequest",
        "HttpResponse",
        "DurableOrchestrationClient",
        "DurableOrchestrationContext",
        "DurableOrchestrationStatus",
        "OrchestrationRuntimeStatus",
        "RetryOptions",
        "EntityId",
        "Runtime",
        "TaskFailedError",
        "NonDeterminismError",
        "InstanceExistsError",
        "InstanceNotFoundError",
        "InvalidInstanceStateError",
        "FunctionNotFoundError",
    ):
        assert must in names, must


def test_every_error_maps_to_a_status_code() -> None:
    for name in durafn.__all__:
        obj = getattr(durafn, name)
        if isinstance(obj, type) and issubclass(obj, durafn.DurafnError):
            assert 400 <= obj.status_code <= 599, name
