"""Load a function app: ``function_app.py`` in a folder, or an import string ``module:attr``.

"Not found" and "your module raised" are told apart, and each message names the file and line.
"""

from __future__ import annotations

import importlib
import sys
import traceback
from pathlib import Path
from types import ModuleType

from durafn.app import App
from durafn.errors import AppLoadError

DEFAULT_MODULE = "function_app"


def _user_frame(exc: BaseException, path: Path | None) -> str:
    """``file:line`` of the deepest frame in the user's file (or anywhere, lacking one)."""
    frames = list(traceback.extract_tb(exc.__traceback__))
    if path is not None:
        mine = [f for f in frames if Path(f.filename).resolve() == path.resolve()]
        if mine:
            frames = mine
    if not frames:
        return str(path) if path else "<unknown>"
    return f"{frames[-1].filename}:{frames[-1].lineno}"


def _import(module_name: str, folder: Path) -> ModuleType:
    path = folder / (module_name.replace(".", "/") + ".py")
    folder_str = str(folder)
    # first on the path, so that of several folders with a function_app.py this one is imported
    if folder_str in sys.path:
        sys.path.remove(folder_str)
    sys.path.insert(0, folder_str)
    # a re-load (tests, --reload) must see the file as it is now
    sys.modules.pop(module_name, None)
    try:
        return importlib.import_module(module_name)
    except SyntaxError as exc:
        raise AppLoadError(
            f"{exc.filename}:{exc.lineno}: syntax error in the function app: {exc.msg}"
        ) from None
    except ModuleNotFoundError as exc:
        if exc.name == module_name or module_name.startswith(f"{exc.name}."):
            raise AppLoadError(
                f"no module '{module_name}' in {folder}: create {path.name} (durafn init makes "
                "one) or pass --app module:attribute"
            ) from None
        raise AppLoadError(
            f"{_user_frame(exc, path)}: importing '{module_name}' failed: {exc}; install the "
            f"package that provides '{exc.name}' or fix the import"
        ) from None
    except Exception as exc:
        raise AppLoadError(
            f"{_user_frame(exc, path)}: importing '{module_name}' raised "
            f"{type(exc).__name__}: {exc}"
        ) from None


def _find_app(module: ModuleType, attr: str | None) -> App:
    where = getattr(module, "__file__", module.__name__)
    if attr is not None:
        value = getattr(module, attr, None)
        if not isinstance(value, App):
            found = "nothing" if value is None else f"a {type(value).__name__}"
            raise AppLoadError(f"{where}: '{attr}' is {found}, not a durafn App")
        return value
    apps = {name: value for name, value in vars(module).items() if isinstance(value, App)}
    if not apps:
        raise AppLoadError(f"{where} defines no durafn App; add 'app = df.App()' at module level")
    if len(apps) > 1:
        if "app" in apps:
            return apps["app"]
        names = ", ".join(sorted(apps))
        raise AppLoadError(f"{where} defines several Apps ({names}); pass --app module:attribute")
    return next(iter(apps.values()))


def load_app(target: str | None = None, folder: str | Path | None = None) -> App:
    """Import and validate the app named by ``target`` (default ``function_app``) from ``folder``.

    ``target`` is ``module``, ``module:attr`` or a path to a ``.py`` file. Raises AppLoadError or
    AppValidationError with messages naming the file, line and function.
    """
    base = Path(folder or Path.cwd()).resolve()
    spec = target or DEFAULT_MODULE
    module_part, _, attr = spec.partition(":")
    if module_part.endswith(".py"):
        file = (base / module_part).resolve()
        if not file.is_file():
            raise AppLoadError(f"no file {file}: create it or pass --app module:attribute")
        base, module_part = file.parent, file.stem
    elif module_part == DEFAULT_MODULE and not (base / f"{DEFAULT_MODULE}.py").is_file():
        raise AppLoadError(
            f"no {DEFAULT_MODULE}.py in {base}: run 'durafn init' to create a project, "
            "cd into your project, or pass --app module:attribute"
        )
    module = _import(module_part, base)
    app = _find_app(module, attr or None)
    app.validate()
    return app
