import textwrap
from pathlib import Path

import pytest

import durafn as df
from durafn.discovery import load_app


def write(folder: Path, text: str, name: str = "function_app.py") -> Path:
    path = folder / name
    path.write_text(textwrap.dedent(text))
    return path


def test_loads_function_app_from_the_folder(tmp_path: Path) -> None:
    write(
        tmp_path,
        """
        import durafn as df
        app = df.App()

        @app.activity
        def ping(x):
            return x
        """,
    )
    app = load_app(folder=tmp_path)
    assert [s.name for s in app.functions] == ["ping"]


def test_module_attr_target(tmp_path: Path) -> None:
    write(
        tmp_path,
        """
        import durafn as df
        main = df.App()
        other = df.App()
        """,
        name="myapp.py",
    )
    assert isinstance(load_app("myapp:main", folder=tmp_path), df.App)
    with pytest.raises(df.AppLoadError, match="several Apps"):
        load_app("myapp", folder=tmp_path)
    with pytest.raises(df.AppLoadError, match="'nothing_here' is nothing"):
        load_app("myapp:nothing_here", folder=tmp_path)


def test_missing_file_says_how_to_make_one(tmp_path: Path) -> None:
    with pytest.raises(df.AppLoadError, match="durafn init"):
        load_app(folder=tmp_path)


def test_syntax_error_names_file_and_line(tmp_path: Path) -> None:
    path = write(tmp_path, "import durafn as df\napp = df.App(\n")
    with pytest.raises(df.AppLoadError) as caught:
        load_app(folder=tmp_path)
    assert f"{path}:" in str(caught.value)
    assert "syntax error" in str(caught.value)


def test_missing_dependency_is_told_apart_from_a_missing_app(tmp_path: Path) -> None:
    path = write(tmp_path, "import durafn as df\nimport surely_not_installed_pkg\napp = df.App()\n")
    with pytest.raises(df.AppLoadError) as caught:
        load_app(folder=tmp_path)
    message = str(caught.value)
    assert f"{path}:2" in message
    assert "surely_not_installed_pkg" in message


def test_module_that_raises_names_the_line_and_error(tmp_path: Path) -> None:
    path = write(tmp_path, "import durafn as df\napp = df.App()\nraise ValueError('boom')\n")
    with pytest.raises(df.AppLoadError) as caught:
        load_app(folder=tmp_path)
    assert f"{path}:3" in str(caught.value)
    assert "ValueError: boom" in str(caught.value)


def test_module_without_app(tmp_path: Path) -> None:
    write(tmp_path, "x = 1\n")
    with pytest.raises(df.AppLoadError, match="defines no durafn App"):
        load_app(folder=tmp_path)


def test_invalid_bindings_fail_validation_on_load(tmp_path: Path) -> None:
    write(
        tmp_path,
        """
        import durafn as df
        app = df.App()

        @app.orchestrator
        def orch(context):
            return 1
        """,
    )
    with pytest.raises(df.AppValidationError, match="'orch'"):
        load_app(folder=tmp_path)
