"""Function templates and new projects: ``durafn templates``, ``durafn new``, ``durafn init``.

A template is a runnable module in ``templates/``: a docstring whose first line is ``id:
description``, its imports, ``app = df.App(...)``, then the functions it adds, named after the
placeholder ``FUNC``. Rendering replaces ``FUNC`` with the user's name, so every name and route a
template adds derives from it. Nothing here overwrites a file: a name that exists is refused and
the file is left as it was.
"""

from __future__ import annotations

import ast
import builtins
import keyword
import os
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path

from durafn.errors import ScaffoldError
from durafn.functions import route_shape
from durafn.scaffold_source import Definitions, add_imports, definitions, import_statements

PLACEHOLDER = re.compile(r"(?<![A-Za-z0-9])FUNC(?![A-Za-z0-9])")
PROJECT_PLACEHOLDER = "PROJECT"
APP_FILE = "function_app.py"
STARTER_TEMPLATE = "orchestration"
STARTER_NAME = "hello"

# project file in templates/project -> name in the new project (a dot file may not survive
# packaging, so .gitignore is stored without its dot)
PROJECT_FILES = {
    "function_app.py": "function_app.py",
    "test_function_app.py": "test_function_app.py",
    "requirements.txt": "requirements.txt",
    "README.md": "README.md",
    "gitignore": ".gitignore",
    "pytest.ini": "pytest.ini",
}


def templates_dir() -> Path:
    """The templates folder: ``durafn/_templates`` in a wheel, ``templates/`` in a checkout."""
    here = Path(__file__).resolve().parent
    for candidate in (here / "_templates", here.parent / "templates"):
        if (candidate / "project").is_dir():
            return candidate
    raise ScaffoldError(
        f"durafn's templates are missing (looked in {here / '_templates'} and "
        f"{here.parent / 'templates'}); reinstall durafn"
    )


@dataclass(frozen=True)
class Template:
    """One function template: its id, a one-line description and the file it comes from."""

    id: str
    description: str
    path: Path

    def render(self, name: str) -> RenderedTemplate:
        """The template's imports and functions with ``FUNC`` replaced by ``name``."""
        check_name(name)
        source = PLACEHOLDER.sub(name, self.path.read_text(encoding="utf-8"))
        tree = ast.parse(source, filename=str(self.path))
        docstring = ast.get_docstring(tree) or ""
        app_index = next(
            (i for i, node in enumerate(tree.body) if _assigns_app(node)),
            None,
        )
        if app_index is None:
            raise ScaffoldError(f"template {self.path} has no 'app = df.App(...)' line")
        app_node = tree.body[app_index]
        lines = source.splitlines()
        body = "\n".join(lines[app_node.end_lineno or app_node.lineno :]).strip("\n") + "\n"
        imports = import_statements(source, tree.body[:app_index])
        added = definitions(ast.parse(body))
        notes = "\n".join(docstring.splitlines()[1:]).strip()
        return RenderedTemplate(self, name, imports, body, added, notes)


@dataclass(frozen=True)
class RenderedTemplate:
    """A template rendered for one name: the imports it needs and the code it appends."""

    template: Template
    name: str
    imports: list[str]
    body: str
    defines: Definitions
    notes: str


def _assigns_app(node: ast.stmt) -> bool:
    return isinstance(node, ast.Assign) and any(
        isinstance(target, ast.Name) and target.id == "app" for target in node.targets
    )


def _read_template(path: Path) -> Template:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    first = (ast.get_docstring(tree) or "").split("\n", 1)[0]
    template_id, sep, description = first.partition(":")
    if not sep or not description.strip():
        raise ScaffoldError(f"template {path} must start with a docstring 'id: description'")
    return Template(template_id.strip(), description.strip(), path)


def list_templates() -> list[Template]:
    """Every function template, by id."""
    found = [_read_template(path) for path in templates_dir().glob("*.py")]
    return sorted(found, key=lambda template: template.id)


def get_template(template_id: str) -> Template:
    """The template with that id; ScaffoldError listing the ids if there is none."""
    templates = list_templates()
    for template in templates:
        if template.id == template_id:
            return template
    ids = ", ".join(t.id for t in templates)
    raise ScaffoldError(
        f"no template '{template_id}'; choose one of: {ids} (durafn templates describes them)"
    )


def check_name(name: str) -> None:
    """ScaffoldError unless ``name`` can name a Python function without shadowing a builtin."""
    if not name.isidentifier() or keyword.iskeyword(name):
        raise ScaffoldError(
            f"'{name}' is not a valid Python function name: use letters, digits and underscores, "
            "not starting with a digit (e.g. process_order)"
        )
    if name in dir(builtins):
        raise ScaffoldError(f"'{name}' would shadow Python's built-in {name}; choose another name")


def _conflicts(existing: Definitions, rendered: RenderedTemplate, filename: str) -> list[str]:
    problems = []
    imported = definitions(ast.parse("\n".join(rendered.imports))).names
    for name in rendered.defines.names:
        line = existing.names.get(name) or existing.functions.get(name.lower())
        if line is not None:
            problems.append(f"'{name}' ({filename}:{line})")
        elif name in imported:
            problems.append(f"'{name}' (the template imports it)")
    declared = {name.lower() for name in rendered.defines.names}
    for name in rendered.defines.functions:  # registered names that differ from Python names
        line = existing.functions.get(name)
        if line is not None and name not in declared:
            problems.append(f"function '{name}' ({filename}:{line})")
    shapes = {route_shape(route): line for route, line in existing.routes.items()}
    for route in rendered.defines.routes:
        line = shapes.get(route_shape(route))
        if line is not None:
            problems.append(f"route '{route}' ({filename}:{line})")
    return problems


def add_to_source(source: str, rendered: RenderedTemplate, filename: str = APP_FILE) -> str:
    """``source`` with the template's imports merged in and its functions appended.

    ScaffoldError when the source does not parse or already defines a name the template adds.
    """
    try:
        tree = ast.parse(source, filename=filename)
    except SyntaxError as exc:
        raise ScaffoldError(
            f"{filename}:{exc.lineno}: syntax error: {exc.msg}; fix it before adding functions"
        ) from None
    existing = definitions(tree)
    if "app" not in existing.names:
        raise ScaffoldError(
            f"{filename} has no module-level 'app = df.App(...)'; templates add their functions "
            "to 'app' (rename your App variable to app, or add the code by hand)"
        )
    problems = _conflicts(existing, rendered, filename)
    if problems:
        raise ScaffoldError(
            f"{filename} already has {', '.join(problems)}; template '{rendered.template.id}' "
            f"with --name {rendered.name} would add the same, so nothing was changed: choose "
            "another --name"
        )
    merged = add_imports(source, rendered.imports)
    result = merged.rstrip("\n") + "\n\n\n" + rendered.body
    compile(result, filename, "exec")  # a template bug must not leave a broken file behind
    return result


def _write_new(path: Path, text: str) -> None:
    # mode "x": never overwrite, even a file created since we looked
    with path.open("x", encoding="utf-8") as handle:
        handle.write(text)


def add_template(file: Path, template_id: str, name: str) -> RenderedTemplate:
    """Add template ``template_id`` named ``name`` to ``file`` (a function_app.py), atomically."""
    template = get_template(template_id)
    rendered = template.render(name)
    if not file.is_file():
        raise ScaffoldError(
            f"no {file.name} in {file.parent.resolve()}: run 'durafn init' to create a project, "
            "or cd into your project"
        )
    updated = add_to_source(file.read_text(encoding="utf-8"), rendered, file.name)
    handle, temporary = tempfile.mkstemp(dir=file.parent, prefix=f".{file.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as out:
            out.write(updated)
        os.chmod(temporary, file.stat().st_mode & 0o777)
        os.replace(temporary, file)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return rendered


@dataclass(frozen=True)
class InitResult:
    """What ``durafn init`` did: the files it created and the existing ones it left alone."""

    folder: Path
    created: list[str]
    kept: list[str]


def init_project(folder: Path) -> InitResult:
    """Create a runnable project in ``folder``: an app with a starter, an orchestrator and an
    activity, its test, requirements, README, pytest.ini and .gitignore. Existing files are kept;
    a folder that already has a function_app.py is refused.
    """
    if (folder / APP_FILE).exists():
        raise ScaffoldError(
            f"{folder.resolve()} already has a {APP_FILE}; durafn init only creates new "
            "projects. Add functions to it with 'durafn new --template ID --name NAME', or init "
            "another folder"
        )
    if folder.exists() and not folder.is_dir():
        raise ScaffoldError(f"{folder} is a file, not a folder; choose another path")
    folder.mkdir(parents=True, exist_ok=True)
    project = templates_dir() / "project"
    project_name = folder.resolve().name
    starter = get_template(STARTER_TEMPLATE).render(STARTER_NAME)
    created: list[str] = []
    kept: list[str] = []
    for source_name, target_name in PROJECT_FILES.items():
        target = folder / target_name
        if target.exists():
            kept.append(target_name)
            continue
        text = (project / source_name).read_text(encoding="utf-8")
        text = PLACEHOLDER.sub(STARTER_NAME, text.replace(PROJECT_PLACEHOLDER, project_name))
        if target_name == APP_FILE:
            text = add_to_source(text, starter)
        _write_new(target, text)
        created.append(target_name)
    return InitResult(folder, created, kept)
