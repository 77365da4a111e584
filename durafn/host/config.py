"""HostConfig: every setting of ``durafn start``, from flags and DURAFN_* environment variables."""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from typing import Any

from durafn.client import DEFAULT_STORAGE
from durafn.runtime.config import RuntimeConfig

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 7071
DEFAULT_MAX_BODY_BYTES = 4 * 1024 * 1024


def is_loopback(host: str) -> bool:
    """True for addresses only this machine can reach (127.0.0.0/8, ::1, localhost)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True)
class HostConfig:
    """The local host's settings; ``from_env`` fills what flags leave unset."""

    host: str = DEFAULT_HOST
    port: int = DEFAULT_PORT
    storage: str = DEFAULT_STORAGE
    app_target: str | None = None
    reload: bool = False
    require_keys: bool = False
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    runtime: RuntimeConfig = field(default_factory=RuntimeConfig)

    @property
    def keys_enforced(self) -> bool:
        """Keys are checked off loopback, or everywhere with --require-keys (SPEC §5)."""
        return self.require_keys or not is_loopback(self.host)

    @property
    def base_url(self) -> str:
        """The URL this host serves at, for the banner."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **flags: object) -> HostConfig:
        """Flags that are not None win over DURAFN_PORT, DURAFN_STORAGE, DURAFN_MAX_BODY_BYTES and
        DURAFN_LEASE_SECONDS; flags named after RuntimeConfig fields set those.
        """
        env = os.environ if env is None else env
        values: dict[str, object] = {}
        tuning: dict[str, Any] = {}  # RuntimeConfig fields; its __post_init__ checks them
        if "DURAFN_LEASE_SECONDS" in env:
            tuning["lease_seconds"] = _float_setting(
                "DURAFN_LEASE_SECONDS", env["DURAFN_LEASE_SECONDS"]
            )
        runtime_fields = {f.name for f in fields(RuntimeConfig)}
        for name in [name for name in flags if name in runtime_fields]:
            if flags[name] is not None:
                tuning[name] = flags[name]
            del flags[name]
        if "DURAFN_PORT" in env:
            values["port"] = _int_setting("DURAFN_PORT", env["DURAFN_PORT"])
        if "DURAFN_STORAGE" in env:
            values["storage"] = env["DURAFN_STORAGE"]
        if "DURAFN_MAX_BODY_BYTES" in env:
            values["max_body_bytes"] = _int_setting(
                "DURAFN_MAX_BODY_BYTES", env["DURAFN_MAX_BODY_BYTES"]
            )
        values.update({k: v for k, v in flags.items() if v is not None})
        if tuning:
            base = values.get("runtime")
            runtime = base if isinstance(base, RuntimeConfig) else RuntimeConfig()
            values["runtime"] = replace(runtime, **tuning)
        return cls(**values)  # type: ignore[arg-type]


def _int_setting(name: str, raw: str) -> int:
    try:
        return int(raw)
    except ValueError:
        raise ValueError(f"{name} must be an integer, not {raw!r}") from None


def _float_setting(name: str, raw: str) -> float:
    try:
        return float(raw)
    except ValueError:
        raise ValueError(f"{name} must be a number of seconds, not {raw!r}") from None
