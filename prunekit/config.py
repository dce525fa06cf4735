"""Pipeline configs: frozen pydantic models that round-trip through JSON and YAML.

Stage fields are dispatched by their ``name`` through the registry, so third-party stage configs
validate (and keep their fields on dump) without any change to this module.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, SerializeAsAny, ValidationError, field_validator

from prunekit._version import __version__
from prunekit.budget import Budget
from prunekit.errors import ConfigError, UnknownStrategyError
from prunekit.interfaces import StageConfig

SCHEMA_VERSION = 1

_STAGE_KINDS = {
    "segmenter": "segmenter",
    "merger": "merger",
    "allocator": "allocator",
    "selector": "frame_selector",
    "scheduler": "layer_scheduler",
    "encoder": "encoder",
}
_OPTIONAL_STAGES = ("merger", "encoder")


def stage_config(kind: str, value: Any) -> StageConfig:
    """Validate ``value`` (a dict with ``name``, a bare name, or a config) as a ``kind`` stage config."""
    from prunekit.plugins import get_registry

    if isinstance(value, str):
        value = {"name": value}
    if isinstance(value, StageConfig):
        value = value.model_dump()
    if not isinstance(value, dict) or "name" not in value:
        raise ConfigError(f"a {kind} must be given as a name or a mapping with a 'name' key, got {value!r}.")
    cls = get_registry().get(kind, value["name"])
    try:
        return cls.Config.model_validate(value)
    except ValidationError as exc:
        raise ConfigError(f"invalid {kind} {value['name']!r}: {_errors(exc)}") from None


class PipelineConfig(BaseModel):
    """A complete strategy: which stages, with which parameters, under which budget."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    schema_version: int = SCHEMA_VERSION
    """Version of this config format; newer files are refused with advice to upgrade."""
    prunekit_version: str = __version__
    """prunekit version that wrote the config (informational, not part of the fingerprint)."""
    name: str = "custom"
    """Preset or user name of the strategy."""
    description: str = ""
    """Where the strategy acts and how its ratio is counted."""
    citation: str = ""
    """The paper the strategy reproduces."""
    segmenter: SerializeAsAny[StageConfig] = Field(default_factory=lambda: stage_config("segmenter", "single"))
    """Temporal segmentation (default: the whole video is one segment)."""
    merger: SerializeAsAny[StageConfig] | None = None
    """Optional token merger for the stage before the LLM."""
    allocator: SerializeAsAny[StageConfig] = Field(
        default_factory=lambda: stage_config("allocator", "proportional"))
    """How each stage's count is split over segments (default: proportionally)."""
    selector: SerializeAsAny[StageConfig]
    """Which tokens of a segment survive a stage."""
    scheduler: SerializeAsAny[StageConfig]
    """Where in the LLM stages act and how many tokens each keeps."""
    encoder: SerializeAsAny[StageConfig] | None = None
    """Optional encoder-level stage: frames it drops inside the vision tower never reach the LLM."""
    budget: Budget | None = None
    """Requested retention; None applies the scheduler's published fractions."""
    seed: int = 0
    """Seed of stochastic selectors (the same seed gives the same selection)."""

    @field_validator("segmenter", "merger", "allocator", "selector", "scheduler", "encoder", mode="before")
    @classmethod
    def _dispatch(cls, value: Any, info: Any) -> Any:
        if value is None:
            return None
        return stage_config(_STAGE_KINDS[info.field_name], value)

    @field_validator("budget", mode="before")
    @classmethod
    def _budget(cls, value: Any) -> Any:
        return Budget.of(value) if isinstance(value, (int, float, dict)) and not isinstance(value, bool) else value

    @field_validator("schema_version")
    @classmethod
    def _schema(cls, value: int) -> int:
        if value > SCHEMA_VERSION:
            raise ValueError(
                f"schema_version {value} is newer than this prunekit ({SCHEMA_VERSION}); upgrade prunekit.")
        return value

    # -- construction helpers -------------------------------------------------------------
    @classmethod
    def parse(cls, data: dict[str, Any]) -> PipelineConfig:
        """Validate a mapping, turning pydantic's errors into one readable `ConfigError`."""
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            raise ConfigError(f"invalid pipeline config: {_errors(exc)}") from None

    def with_budget(self, budget: Budget | float | None) -> PipelineConfig:
        """A copy with another budget (a float means layer-average retention)."""
        return self.model_copy(update={"budget": Budget.of(budget)})

    # -- serialisation --------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-compatible mapping (plugin stage fields included)."""
        return self.model_dump(mode="json")

    def to_json(self, indent: int | None = 2) -> str:
        """JSON text that `from_json` reads back to an equal config."""
        return json.dumps(self.to_dict(), indent=indent, sort_keys=False)

    def to_yaml(self) -> str:
        """YAML text that `from_yaml` reads back to an equal config."""
        return yaml.safe_dump(self.to_dict(), sort_keys=False)

    @classmethod
    def from_json(cls, text: str) -> PipelineConfig:
        """Parse JSON text."""
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"malformed JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}.") from None
        return cls.parse(_mapping(data))

    @classmethod
    def from_yaml(cls, text: str) -> PipelineConfig:
        """Parse YAML text."""
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
            raise ConfigError(f"malformed YAML{where}: {getattr(exc, 'problem', exc)}.") from None
        return cls.parse(_mapping(data))

    @classmethod
    def load(cls, path: str | Path) -> PipelineConfig:
        """Read a ``.json``, ``.yaml`` or ``.yml`` file."""
        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"config file {str(path)!r} does not exist.")
        text = path.read_text()
        return cls.from_json(text) if path.suffix == ".json" else cls.from_yaml(text)

    def save(self, path: str | Path) -> None:
        """Write JSON or YAML according to the suffix."""
        path = Path(path)
        path.write_text(self.to_json() if path.suffix == ".json" else self.to_yaml())

    def fingerprint(self) -> str:
        """Short hash of what determines behaviour (the version and description excluded)."""
        data = self.to_dict()
        for key in ("prunekit_version", "description", "citation", "name"):
            data.pop(key, None)
        if data.get("encoder") is None:  # configs without an encoder keep the fingerprints they had
            data.pop("encoder", None)
        blob = json.dumps(data, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(blob.encode()).hexdigest()[:12]


def json_schema() -> dict[str, Any]:
    """JSON schema of a pipeline config, with every stage registered now listed per field."""
    from prunekit.plugins import get_registry

    registry = get_registry()
    schema = PipelineConfig.model_json_schema()
    for field, kind in _STAGE_KINDS.items():
        options = [registry.get(kind, n).Config.model_json_schema() for n in registry.names(kind)]
        schema["properties"][field] = {"anyOf": options + ([{"type": "null"}] if field in _OPTIONAL_STAGES else [])}
    return schema


def _mapping(data: Any) -> dict[str, Any]:
    if not isinstance(data, dict):
        raise ConfigError(f"a pipeline config must be a mapping at the top level, got {type(data).__name__}.")
    return data


def _errors(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"]) or "(root)"
        msg = err["msg"]
        if err["type"] == "extra_forbidden":
            msg = "unknown field; remove it or check its spelling"
        parts.append(f"{loc}: {msg}")
    return "; ".join(parts)


__all__ = ["PipelineConfig", "stage_config", "json_schema", "SCHEMA_VERSION", "UnknownStrategyError"]
