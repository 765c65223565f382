"""``edgekit.yaml``: the one deployment config every template is rendered from.

:class:`DeployConfig` is a frozen dataclass loaded from YAML (or a dict); unknown keys and bad
values raise :class:`~edgekit.errors.ConfigError` naming the field (``service.watchdog_sec``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, fields, replace
from pathlib import Path, PurePosixPath
from typing import Any

import yaml

from edgekit.app import ON_OUTPUT_ERROR
from edgekit.errors import ConfigError

BOARDS = ("rpi5", "rpi4", "coral-usb", "coral-devboard")
TASKS = ("detect", "pose", "classify")
_NAME = re.compile(r"^[a-z_][a-z0-9_-]{0,31}$")  # a POSIX-portable user name
_HOST = re.compile(r"^(?!-)[A-Za-z0-9-]{1,63}(?<!-)$")


@dataclass(frozen=True)
class Thresholds:
    """Thresholds: ``score`` goes to the service's ``edgekit <task> --score``; ``iou`` is
    recorded in the installed edgekit.yaml (the run command uses the model's own)."""

    score: float = 0.5
    iou: float = 0.5


@dataclass(frozen=True)
class ServiceOptions:
    """How systemd runs the app. ``watchdog_sec=0`` turns the watchdog (and Type=notify) off.
    ``on_output_error`` goes to ``edgekit <task> --on-output-error``: "continue" (default: the
    camera, preview and watchdog keep running without the failed output; the exit status at
    stop is 5) or "stop" (the service exits 5 at once and ``Restart=always`` starts it again)."""

    watchdog_sec: int = 30
    restart_sec: int = 2
    nice: int = 0
    output_dir: str = "/var/lib/edgekit"
    on_output_error: str = "continue"
    extra_args: tuple[str, ...] = ()
    environment: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class InstallOptions:
    """Where the bundle installs on the board and how the Python app gets there."""

    prefix: str = "/opt/edgekit"
    pip_spec: str = "edgekit[pi]"


@dataclass(frozen=True)
class DeployConfig:
    """Everything the bundle, first-boot files and systemd unit are rendered from."""

    board: str = "rpi5"
    task: str = "detect"
    models: tuple[str, ...] = ()
    source: str = "camera"
    outputs: tuple[str, ...] = ("jsonl",)
    thresholds: Thresholds = field(default_factory=Thresholds)
    user: str = "edgekit"
    login_user: str = "pi"
    hostname: str = "edgekit"
    wifi_country: str | None = None
    service: ServiceOptions = field(default_factory=ServiceOptions)
    install: InstallOptions = field(default_factory=InstallOptions)

    def with_overrides(self, **changes: Any) -> DeployConfig:
        """A copy with the non-``None`` keyword arguments replaced, then validated."""
        cfg = replace(self, **{k: v for k, v in changes.items() if v is not None})
        validate(cfg)
        return cfg

    @property
    def model_names(self) -> tuple[str, ...]:
        """File names the models have inside the bundle and on the board."""
        return tuple(Path(m).name for m in self.models)


_NESTED = {"thresholds": Thresholds, "service": ServiceOptions, "install": InstallOptions}
OUTPUTS = ("jsonl", "video")


def _check_keys(data: dict, cls: type, prefix: str, source: str) -> None:
    known = {f.name for f in fields(cls)}
    if cls is DeployConfig:
        known.add("model")  # a single model is accepted as ``model:``
    for key in data:
        if key not in known:
            raise ConfigError(
                f"{source}: unknown field '{prefix}{key}'",
                hint="known: " + ", ".join(sorted(known)),
            )


def _typed(value: Any, kind: type, name: str, source: str) -> Any:
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise ConfigError(f"{source}: field '{name}' must be {kind.__name__}, got {value!r}")
    return value


def _str_tuple(value: Any, name: str, source: str) -> tuple[str, ...]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list | tuple) or not all(isinstance(v, str) for v in value):
        raise ConfigError(f"{source}: field '{name}' must be a string or a list of strings")
    return tuple(value)


def config_from_dict(data: dict[str, Any] | None, *, source: str = "edgekit.yaml") -> DeployConfig:
    """Build and validate a :class:`DeployConfig` from parsed YAML."""
    data = dict(data or {})
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: top level must be a mapping")
    _check_keys(data, DeployConfig, "", source)
    if "model" in data:
        if "models" in data:
            raise ConfigError(f"{source}: give 'model' or 'models', not both")
        data["models"] = data.pop("model")
    kwargs: dict[str, Any] = {}
    for f in fields(DeployConfig):
        if f.name not in data:
            continue
        value = data[f.name]
        if f.name in _NESTED:
            cls = _NESTED[f.name]
            if not isinstance(value, dict):
                raise ConfigError(f"{source}: field '{f.name}' must be a mapping")
            _check_keys(value, cls, f"{f.name}.", source)
            sub = {}
            for sf in fields(cls):
                if sf.name not in value:
                    continue
                v, name = value[sf.name], f"{f.name}.{sf.name}"
                if sf.name == "extra_args":
                    sub[sf.name] = _str_tuple(v, name, source)
                elif sf.name == "environment":
                    if not isinstance(v, dict):
                        raise ConfigError(f"{source}: field '{name}' must be a mapping")
                    sub[sf.name] = tuple(sorted((str(k), str(x)) for k, x in v.items()))
                else:
                    sub[sf.name] = _typed(v, type(getattr(cls(), sf.name)), name, source)
            kwargs[f.name] = cls(**sub)
        elif f.name in ("models", "outputs"):
            kwargs[f.name] = _str_tuple(value, f.name, source)
        elif f.name == "wifi_country":
            kwargs[f.name] = None if value is None else _typed(value, str, f.name, source)
        else:
            kwargs[f.name] = _typed(value, str, f.name, source)
    cfg = DeployConfig(**kwargs)
    validate(cfg, source=source)
    return cfg


def validate(cfg: DeployConfig, *, source: str = "edgekit.yaml") -> None:
    """Raise :class:`ConfigError` naming the first invalid field."""

    def bad(name: str, why: str) -> ConfigError:
        return ConfigError(f"{source}: field '{name}' {why}")

    if cfg.board not in BOARDS:
        raise bad("board", f"must be one of {', '.join(BOARDS)}, got {cfg.board!r}")
    if cfg.task not in TASKS:
        raise bad("task", f"must be one of {', '.join(TASKS)}, got {cfg.task!r}")
    for out in cfg.outputs:
        if out not in OUTPUTS:
            raise bad("outputs", f"entries must be among {', '.join(OUTPUTS)}, got {out!r}")
    for name in ("user", "login_user"):
        if not _NAME.match(getattr(cfg, name)):
            raise bad(name, "must be a lowercase POSIX user name (a-z, 0-9, _ and -)")
    if not _HOST.match(cfg.hostname):
        raise bad("hostname", "must be a single DNS label (letters, digits, '-')")
    if cfg.wifi_country is not None and not re.fullmatch(r"[A-Z]{2}", cfg.wifi_country):
        raise bad("wifi_country", "must be a two-letter ISO 3166 code such as GB or US")
    for name in ("score", "iou"):
        value = getattr(cfg.thresholds, name)
        if not 0.0 <= value <= 1.0:
            raise bad(f"thresholds.{name}", f"must be within [0, 1], got {value}")
    svc = cfg.service
    if svc.watchdog_sec < 0 or svc.restart_sec < 0:
        raise bad("service.watchdog_sec/restart_sec", "must be >= 0")
    if not -20 <= svc.nice <= 19:
        raise bad("service.nice", "must be within [-20, 19]")
    if svc.on_output_error not in ON_OUTPUT_ERROR:
        raise bad(
            "service.on_output_error",
            f"must be one of {', '.join(ON_OUTPUT_ERROR)}, got {svc.on_output_error!r}",
        )
    for name, path in (
        ("service.output_dir", svc.output_dir),
        ("install.prefix", cfg.install.prefix),
    ):
        p = PurePosixPath(path)
        if not p.is_absolute() or ".." in p.parts or any(c in path for c in " \t\n\"'%$\\"):
            raise bad(name, f"must be an absolute path without '..', spaces or quotes: {path!r}")
    for key, _ in svc.environment:
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", key):
            raise bad("service.environment", f"has an invalid variable name {key!r}")
    names = cfg.model_names
    if len(set(names)) != len(names):
        raise bad("models", f"file names must be unique: {', '.join(names)}")
    for n in names:
        if not re.fullmatch(r"[A-Za-z0-9._-]+", n) or n.startswith("."):
            raise bad("models", f"file name {n!r} must use only letters, digits, '.', '_', '-'")


def load_config(path: str | Path | None = None) -> DeployConfig:
    """Load ``edgekit.yaml`` (defaults when ``path`` is ``None``). Model paths are resolved
    relative to the config file's folder."""
    if path is None:
        return DeployConfig()
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror or exc}") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from exc
    if data is not None and not isinstance(data, dict):
        raise ConfigError(f"{path}: top level must be a mapping, got {type(data).__name__}")
    cfg = config_from_dict(data, source=str(path))
    models = tuple(str((path.parent / m) if not Path(m).is_absolute() else m) for m in cfg.models)
    return replace(cfg, models=models)


def config_to_dict(cfg: DeployConfig) -> dict[str, Any]:
    """The YAML form of ``cfg`` as installed on the board (models by file name)."""
    return {
        "board": cfg.board,
        "task": cfg.task,
        "models": list(cfg.model_names),
        "source": cfg.source,
        "outputs": list(cfg.outputs),
        "thresholds": {"score": cfg.thresholds.score, "iou": cfg.thresholds.iou},
        "user": cfg.user,
        "login_user": cfg.login_user,
        "hostname": cfg.hostname,
        "wifi_country": cfg.wifi_country,
        "service": {
            "watchdog_sec": cfg.service.watchdog_sec,
            "restart_sec": cfg.service.restart_sec,
            "nice": cfg.service.nice,
            "output_dir": cfg.service.output_dir,
            "on_output_error": cfg.service.on_output_error,
            "extra_args": list(cfg.service.extra_args),
            "environment": dict(cfg.service.environment),
        },
        "install": {"prefix": cfg.install.prefix, "pip_spec": cfg.install.pip_spec},
    }
