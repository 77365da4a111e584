"""Keys (SPEC §5): where a host's function, master and system keys come from, and the checks that
guard HTTP triggers and the management API when keys are enforced.

Each key comes from its environment variable (DURAFN_FUNCTION_KEY, DURAFN_MASTER_KEY,
DURAFN_SYSTEM_KEY) or else from ``.durafn/keys.json`` in the project folder, which is created with
random keys, readable by its owner only (0600), the first time it is needed.
"""

from __future__ import annotations

import contextlib
import hmac
import json
import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from starlette.requests import Request

from durafn.errors import KeysFileError, UnauthorizedError
from durafn.functions import FunctionSpec
from durafn.http import AuthLevel

KEY_HEADER = "x-functions-key"
KEY_QUERY_PARAMETER = "code"
KEYS_FILE = Path(".durafn") / "keys.json"

KEY_NAMES = ("function", "master", "system")
ENV_VARIABLES = {
    "function": "DURAFN_FUNCTION_KEY",
    "master": "DURAFN_MASTER_KEY",
    "system": "DURAFN_SYSTEM_KEY",
}
_FILE_FIELDS = {"function": "functionKey", "master": "masterKey", "system": "systemKey"}


@dataclass(frozen=True)
class HostKeys:
    """A host's three keys; ``sources`` maps each key name to its env variable or file path."""

    function: str = field(repr=False)
    master: str = field(repr=False)
    system: str = field(repr=False)
    sources: Mapping[str, str] = field(default_factory=dict)

    def value(self, name: str) -> str:
        """The key called ``name`` (function, master or system)."""
        key: str = getattr(self, name)
        return key

    def describe_sources(self) -> str:
        """Where the keys came from, for the banner (e.g. ``/app/.durafn/keys.json``)."""
        return ", ".join(dict.fromkeys(self.sources.get(name, "?") for name in KEY_NAMES))


def load_keys(folder: Path, env: Mapping[str, str] | None = None) -> HostKeys:
    """The host's keys: each from its environment variable, else from ``folder/.durafn/keys.json``
    (created with random keys if missing). KeysFileError says what is wrong with the file.
    """
    env = os.environ if env is None else env
    values: dict[str, str] = {}
    sources: dict[str, str] = {}
    for name, variable in ENV_VARIABLES.items():
        # an empty variable is unset: an empty key would let an empty ?code= in
        if env.get(variable):
            values[name] = env[variable]
            sources[name] = variable
    if len(values) < len(KEY_NAMES):
        path = (folder / KEYS_FILE).absolute()
        stored = read_or_create_keys_file(path)
        for name in KEY_NAMES:
            if name not in values:
                values[name] = stored[name]
                sources[name] = str(path)
    return HostKeys(values["function"], values["master"], values["system"], sources)


def read_or_create_keys_file(path: Path) -> dict[str, str]:
    """The keys stored at ``path`` (function, master, system), creating the file if missing."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return _create_keys_file(path)
    except (OSError, UnicodeDecodeError) as exc:
        raise KeysFileError(
            f"cannot read the keys file {path}: {exc}; fix its permissions, or set "
            "DURAFN_FUNCTION_KEY, DURAFN_MASTER_KEY and DURAFN_SYSTEM_KEY instead"
        ) from None
    return _parse_keys_file(path, text)


def _parse_keys_file(path: Path, text: str) -> dict[str, str]:
    try:
        data = json.loads(text)
    except ValueError:
        raise KeysFileError(
            f"the keys file {path} is not valid JSON; fix it, or delete it and start the host "
            "again to get new random keys"
        ) from None
    keys: dict[str, str] = {}
    for name, json_field in _FILE_FIELDS.items():
        value = data.get(json_field) if isinstance(data, dict) else None
        if not isinstance(value, str) or not value:
            raise KeysFileError(
                f"the keys file {path} has no {json_field}; add it as a non-empty string, or "
                "delete the file and start the host again to get new random keys"
            )
        keys[name] = value
    return keys


def _create_keys_file(path: Path) -> dict[str, str]:
    keys = {name: secrets.token_urlsafe(32) for name in KEY_NAMES}
    text = json.dumps({_FILE_FIELDS[name]: keys[name] for name in KEY_NAMES}, indent=2) + "\n"
    temporary = path.with_name(f".{path.name}.{secrets.token_hex(8)}.tmp")
    try:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        # 0600 from the first byte: chmod after creating would leave a moment of umask's mode
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as file:
            file.write(text)
            file.flush()
            os.fsync(file.fileno())
        try:
            # link, not rename: it never replaces keys another process wrote in the meantime, and
            # a reader never sees a half-written file
            os.link(temporary, path)
        except FileExistsError:
            return read_or_create_keys_file(path)
    except OSError as exc:
        raise KeysFileError(
            f"cannot create the keys file {path}: {exc}; make the folder writable, or set "
            "DURAFN_FUNCTION_KEY, DURAFN_MASTER_KEY and DURAFN_SYSTEM_KEY instead"
        ) from None
    finally:
        with contextlib.suppress(OSError):
            temporary.unlink()
    return keys


def presented_key(request: Request) -> str | None:
    """The key a request carries: the x-functions-key header, else the ``code`` query parameter."""
    return request.headers.get(KEY_HEADER) or request.query_params.get(KEY_QUERY_PARAMETER)


def key_matches(given: str | None, accepted: list[str]) -> bool:
    """True if ``given`` equals one of ``accepted``, compared in constant time."""
    if not given:
        return False
    # bytes, because compare_digest refuses str holding non-ASCII characters
    given_bytes = given.encode("utf-8", "surrogatepass")
    matched = False
    for key in accepted:
        # no short cut: every accepted key is compared, whichever matches
        matched |= hmac.compare_digest(given_bytes, key.encode("utf-8", "surrogatepass"))
    return matched


class KeyGuard:
    """The key checks of one host; with ``keys=None`` (keys not enforced) every request passes."""

    def __init__(self, keys: HostKeys | None, default_level: AuthLevel) -> None:
        self.keys = keys
        self.default_level = default_level

    async def trigger(self, request: Request, spec: FunctionSpec) -> None:
        """An HTTP trigger: FUNCTION takes the function or master key, ADMIN the master key."""
        if self.keys is None:
            return
        level = spec.auth_level or self.default_level
        if level is AuthLevel.ANONYMOUS:
            return
        accepted = [self.keys.master]
        if level is AuthLevel.FUNCTION:
            accepted.append(self.keys.function)
        if not key_matches(presented_key(request), accepted):
            raise UnauthorizedError("a valid key is required")

    async def management(self, request: Request) -> None:
        """The management API: the master key or the system key."""
        if self.keys is None:
            return
        if not key_matches(presented_key(request), [self.keys.master, self.keys.system]):
            raise UnauthorizedError("a valid key is required")
