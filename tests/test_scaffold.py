"""durafn init, durafn templates and durafn new: projects and functions from templates/."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from durafn.cli import main
from durafn.scaffold import list_templates, templates_dir

REPO = Path(__file__).resolve().parent.parent
REQUIRED_IDS = {
    "http-trigger",
    "timer-trigger",
    "orchestration",
    "singleton",
    "fan-out-fan-in",
    "human-interaction",
    "monitor",
    "eternal",
    "sub-orchestration",
    "retry",
}


def durafn(folder: Path, *args: str) -> Result:
    """The CLI in-process, run from ``folder``."""
    previous = Path.cwd()
    os.chdir(folder)
    try:
        return CliRunner().invoke(main, list(args), catch_exceptions=False)
    finally:
        os.chdir(previous)


def ruff(folder: Path) -> subprocess.CompletedProcess[str]:
    """ruff with the package's rules (isort included) on a generated project."""
    return subprocess.run(
        [
            str(Path(sys.executable).parent / "ruff"),
            "check",
            "--isolated",
            "--select",
            "E,F,W,I,B,UP,SIM,RUF",
            "--line-length",
            "100",
            "--target-version",
            "py310",
            ".",
        ],
        cwd=folder,
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.fixture
def project(tmp_path: Path) -> Path:
    folder = tmp_path / "proj"
    result = durafn(tmp_path, "init", "proj")
    assert result.exit_code == 0, result.output
    return folder


def test_templates_lists_one_line_per_template_id_first(tmp_path: Path) -> None:
    result = durafn(tmp_path, "templates")
    assert result.exit_code == 0
    lines = result.output.splitlines()
    ids = [line.split()[0] for line in lines]
    assert set(ids) >= REQUIRED_IDS
    assert len(lines) == len(list(templates_dir().glob("*.py")))
    for line in lines:
        description = line.split(None, 1)[1]
        assert description[0].isupper() and len(line) < 100, line
        assert "FUNC" not in description
    assert ids == sorted(ids)


def test_template_files_declare_their_id_and_run_as_modules() -> None:
    for template in list_templates():
        assert template.path.stem.replace("_", "-") == template.id
        source = template.path.read_text()
        compile(source, str(template.path), "exec")
        rendered = template.render("thing")
        assert "FUNC" not in rendered.body and "FUNC" not in rendered.notes
        assert "app = " not in rendered.body
        # every name and route the template adds derives from the name given
        assert all(name.startswith("thing") for name in rendered.defines.names), template.id
        assert all(route.startswith("thing") for route in rendered.defines.routes), template.id


def test_templates_are_linted_like_the_package() -> None:
    result = subprocess.run(
        [str(Path(sys.executable).parent / "ruff"), "check", "templates"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_init_creates_a_project_whose_tests_pass(tmp_path: Path) -> None:
    result = durafn(tmp_path, "init", "shop")
    assert result.exit_code == 0, result.output
    folder = tmp_path / "shop"
    names = {p.name for p in folder.iterdir()}
    assert names >= {
        "function_app.py",
        "test_function_app.py",
        "requirements.txt",
        "README.md",
        ".gitignore",
        "pytest.ini",
    }
    assert ".durafn/" in (folder / ".gitignore").read_text().splitlines()
    assert "durafn" in (folder / "requirements.txt").read_text().split()
    assert "# shop" in (folder / "README.md").read_text()
    assert "cd shop" in result.output
    defined = ast.parse((folder / "function_app.py").read_text())
    functions = {
        n.name for n in defined.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))
    }
    assert functions == {"hello", "hello_orchestrator", "hello_activity"}
    assert ruff(folder).returncode == 0, ruff(folder).stdout

    tests = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"],
        cwd=folder,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert tests.returncode == 0, tests.stdout + tests.stderr
    assert "2 passed" in tests.stdout


def test_init_refuses_a_folder_with_a_function_app(project: Path) -> None:
    before = (project / "function_app.py").read_bytes()
    result = durafn(project.parent, "init", "proj")
    assert result.exit_code == 1
    assert "already has a function_app.py" in result.output and "durafn new" in result.output
    assert (project / "function_app.py").read_bytes() == before


def test_init_keeps_existing_files(tmp_path: Path) -> None:
    (tmp_path / "README.md").write_text("mine\n")
    result = durafn(tmp_path, "init")
    assert result.exit_code == 0, result.output
    assert (tmp_path / "README.md").read_text() == "mine\n"
    assert "README.md (kept" in result.output
    assert (tmp_path / "function_app.py").is_file()


def test_new_appends_a_template_with_derived_names(project: Path) -> None:
    result = durafn(project, "new", "--template", "human-interaction", "--name", "approve_po")
    assert result.exit_code == 0, result.output
    assert "approve_po, approve_po_approve, approve_po_orchestrator" in result.output
    assert "POST /api/approve_po/{instanceId}/approve" in result.output
    source = (project / "function_app.py").read_text()
    assert source.count("from datetime import timedelta") == 1
    assert source.count("import durafn as df") == 1
    assert "def approve_po_orchestrator(" in source and "FUNC_" not in source
    assert ruff(project).returncode == 0, ruff(project).stdout


def test_new_merges_imports_where_isort_wants_them(tmp_path: Path) -> None:
    app_file = tmp_path / "function_app.py"
    app_file.write_text(
        '"""An app."""\n\nimport json\nfrom typing import cast\n\n'
        "import durafn as df\n"
        "\napp = df.App()\n\n\n@app.activity\ndef parse(text: str) -> dict[str, int]:\n"
        "    return cast(dict[str, int], json.loads(text))\n"
    )
    result = durafn(tmp_path, "new", "-t", "timer-trigger", "-n", "sweep")
    assert result.exit_code == 0, result.output
    result = durafn(tmp_path, "new", "-t", "monitor", "-n", "watch")
    assert result.exit_code == 0, result.output
    source = app_file.read_text()
    head = source.split("app = df.App()")[0]
    assert head == (
        '"""An app."""\n\nimport json\nimport logging\nfrom collections.abc import Generator\n'
        "from datetime import timedelta\nfrom typing import Any, cast\n\nimport durafn as df\n\n"
    )
    assert ruff(tmp_path).returncode == 0, ruff(tmp_path).stdout


@pytest.mark.parametrize(
    ("template", "name", "existing"),
    [
        ("http-trigger", "hello", "'hello'"),
        ("orchestration", "hello", "'hello'"),
        ("fan-out-fan-in", "HELLO", "'HELLO'"),
        ("retry", "report", "'report_activity'"),
        ("http-trigger", "stats", "route 'stats'"),
        ("timer-trigger", "renamed", "'renamed'"),
        ("http-trigger", "app", "'app'"),
    ],
)
def test_new_refuses_a_name_that_exists_and_leaves_the_file_unchanged(
    project: Path, template: str, name: str, existing: str
) -> None:
    app_file = project / "function_app.py"
    with app_file.open("a") as handle:
        handle.write(
            "\n\n@app.activity\ndef report_activity(x: int) -> int:\n    return x\n"
            '\n\n@app.route(route="stats")\ndef get_stats(req: df.HttpRequest) -> str:\n'
            '    return "ok"\n'
            '\n\n@app.activity(name="Renamed")\ndef other(x: int) -> int:\n    return x\n'
        )
    before = app_file.read_bytes()
    result = durafn(project, "new", "--template", template, "--name", name)
    assert result.exit_code == 1
    assert existing in result.output and "function_app.py:" in result.output
    assert "nothing was changed" in result.output and "Traceback" not in result.output
    assert app_file.read_bytes() == before
    assert not list(project.glob(".function_app.py.*"))


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("2fast", "not a valid Python function name"),
        ("my-func", "not a valid Python function name"),
        ("class", "not a valid Python function name"),
        ("list", "would shadow Python's built-in list"),
    ],
)
def test_new_refuses_a_name_that_is_not_an_identifier(
    project: Path, name: str, message: str
) -> None:
    before = (project / "function_app.py").read_bytes()
    result = durafn(project, "new", "-t", "http-trigger", "-n", name)
    assert result.exit_code == 1 and message in result.output
    assert (project / "function_app.py").read_bytes() == before


def test_new_with_an_unknown_template_lists_the_ids(project: Path) -> None:
    result = durafn(project, "new", "-t", "entity", "-n", "counter")
    assert result.exit_code == 1
    assert "no template 'entity'" in result.output
    assert all(template_id in result.output for template_id in REQUIRED_IDS)


def test_new_without_a_function_app_says_to_init(tmp_path: Path) -> None:
    result = durafn(tmp_path, "new", "-t", "http-trigger", "-n", "greet")
    assert result.exit_code == 1
    assert "no function_app.py" in result.output and "durafn init" in result.output
    assert not (tmp_path / "function_app.py").exists()


def test_new_on_a_file_with_a_syntax_error_names_the_line(tmp_path: Path) -> None:
    app_file = tmp_path / "function_app.py"
    app_file.write_text("import durafn as df\napp = df.App(\n")
    result = durafn(tmp_path, "new", "-t", "http-trigger", "-n", "greet")
    assert result.exit_code == 1
    assert "function_app.py:2" in result.output and "syntax error" in result.output
    assert app_file.read_text() == "import durafn as df\napp = df.App(\n"


def test_new_needs_an_app_variable(tmp_path: Path) -> None:
    app_file = tmp_path / "function_app.py"
    app_file.write_text("import durafn as df\n\nfunctions = df.App()\n")
    result = durafn(tmp_path, "new", "-t", "http-trigger", "-n", "greet")
    assert result.exit_code == 1 and "no module-level 'app = df.App(...)'" in result.output
    assert app_file.read_text() == "import durafn as df\n\nfunctions = df.App()\n"


def test_an_installed_wheel_finds_its_templates(tmp_path: Path) -> None:
    pytest.importorskip("hatchling")
    pip = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q"]
    built = subprocess.run(
        [*pip, "-w", str(tmp_path / "dist"), str(REPO)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert built.returncode == 0, built.stderr
    (wheel,) = (tmp_path / "dist").glob("durafn-*.whl")
    site = tmp_path / "site"
    with zipfile.ZipFile(wheel) as archive:
        archive.extractall(site)
    env = {**os.environ, "PYTHONPATH": str(site)}
    script = "from durafn.scaffold import templates_dir; print(templates_dir())"
    where = subprocess.run(
        [sys.executable, "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True
    )
    assert where.stdout.strip() == str(site / "durafn" / "_templates"), where.stderr
    init = subprocess.run(
        [sys.executable, "-m", "durafn", "init", "from-wheel"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
    )
    assert init.returncode == 0, init.stderr
    assert "def hello_orchestrator(" in (tmp_path / "from-wheel" / "function_app.py").read_text()
