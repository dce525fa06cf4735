"""The class behind lmms-eval's ``--model prunekit`` (imports lmms-eval; see `prunekit.integrations.lmms_eval`)."""

from __future__ import annotations

import importlib
import inspect
import json
import os
from pathlib import Path
from typing import Any

from lmms_eval.api.model import lmms
from loguru import logger as eval_logger

import prunekit
from prunekit.budget import Budget
from prunekit.config import PipelineConfig
from prunekit.errors import ConfigError
from prunekit.integrations.lmms_eval_bases import BASES

__all__ = ["PrunekitModel", "pipeline_config"]

_UNPRUNED = ("", "none", "unpruned")


def pipeline_config(preset: Any = None, budget: Any = None, mode: str = "layer_average") -> PipelineConfig | None:
    """The pipeline ``prunekit_preset`` / ``prunekit_budget`` / ``prunekit_mode`` ask for; None = unpruned."""
    if preset is None or str(preset).strip().lower() in _UNPRUNED:
        if budget is not None:
            raise ConfigError("prunekit_budget needs prunekit_preset (a preset name or a config file).")
        return None
    name = str(preset).strip()
    config = PipelineConfig.load(name) if name.endswith((".yaml", ".yml", ".json")) else prunekit.presets.get(name)
    if budget is not None:
        try:
            retain = float(budget)
        except ValueError:
            raise ConfigError(f"prunekit_budget must be a number in (0, 1], got {budget!r}.") from None
        config = config.with_budget(Budget(retain, str(mode)))
    return config


class PrunekitModel(lmms):
    """An lmms-eval video model (``base=``) whose language model prunes visual tokens with prunekit.

    ``PrunekitModel(base="llava_hf", pretrained=..., prunekit_preset="hieravid-30", ...)`` returns an
    instance of a class derived from both this class and the base's lmms-eval class, so prompting,
    video decoding and generation are the base's, unchanged; prunekit only adds its hooks to the
    loaded model. Stats (realized retention, FLOPs ratio) are gathered at every prefill and logged
    (and written to ``prunekit_stats``) when lmms-eval calls `clean` after the requests.
    """

    is_simple = True
    _derived: dict[str, type] = {}

    def __new__(cls, *args: Any, base: str = "llava_hf", **kwargs: Any) -> PrunekitModel:
        if cls is PrunekitModel:
            cls = cls._derived_class(base)
        return super().__new__(cls)

    @classmethod
    def _derived_class(cls, base: str) -> type:
        if base not in BASES:
            raise ConfigError(f"base={base!r} is not supported; choose one of {', '.join(BASES)}.")
        if base not in cls._derived:
            module, name = BASES[base].rsplit(".", 1)
            base_cls = getattr(importlib.import_module(module), name)
            cls._derived[base] = type(f"Prunekit{name}", (cls, base_cls),
                                      {"__module__": __name__, "_prunekit_base_class": base_cls})
        return cls._derived[base]

    def __init__(self, base: str = "llava_hf", prunekit_preset: Any = None, prunekit_budget: Any = None,
                 prunekit_mode: str = "layer_average", prunekit_stats: str | None = None, **kwargs: Any) -> None:
        config = pipeline_config(prunekit_preset, prunekit_budget, prunekit_mode)  # fail before loading weights
        super().__init__(**_base_kwargs(self._prunekit_base_class, base, kwargs))
        self.prunekit_base = base
        self.prunekit_config = config
        self._prunekit_stats_path = prunekit_stats
        self._prunekit_samples: list[Any] = []
        self._prunekit_last: Any = None
        self._prunekit_handle = self._prunekit_hook = None
        if config is not None:
            model = self.model  # unwrapped from accelerate
            self._prunekit_handle = prunekit.apply(model, config)
            self._prunekit_hook = model.register_forward_hook(self._prunekit_record)
            eval_logger.info(f"prunekit: {self._prunekit_handle!r}, budget {config.budget}")
        else:
            eval_logger.info("prunekit: unpruned baseline (no prunekit_preset)")

    def _prunekit_record(self, module: Any, args: Any, output: Any) -> None:
        stats = self._prunekit_handle.stats() if self._prunekit_handle is not None else None
        if stats is not None and stats is not self._prunekit_last:  # a new prefill (decode steps keep it)
            self._prunekit_last = stats
            self._prunekit_samples.extend(stats.samples)

    def prunekit_summary(self) -> dict[str, Any]:
        """Preset, config fingerprint, and mean realized retention and FLOPs ratio over every prefill so far."""
        samples = self._prunekit_samples
        mean = (lambda k: sum(getattr(s, k) for s in samples) / len(samples)) if samples else (lambda k: None)
        config = self.prunekit_config
        return {"base": self.prunekit_base, "preset": config.name if config else None,
                "config_fingerprint": config.fingerprint() if config else None,
                "budget": None if config is None or config.budget is None else
                {"retain": config.budget.retain, "mode": config.budget.mode},
                "prefills": len(samples), "prunekit_version": prunekit.__version__,
                **{k: mean(k) if config else 1.0 for k in ("input_retention", "layer_average_retention",
                                                           "flops_ratio")}}

    def clean(self) -> None:
        """Log (and write) the stats, remove prunekit's hooks, then lmms-eval's own clean-up."""
        summary = self.prunekit_summary()
        eval_logger.info(f"prunekit: {json.dumps(summary)}")
        if self._prunekit_stats_path:
            path = stats_path(self._prunekit_stats_path)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(summary, indent=1) + "\n")
        if self._prunekit_hook is not None:
            self._prunekit_hook.remove()
            self._prunekit_hook = None
        if self._prunekit_handle is not None:
            self._prunekit_handle.remove()
            self._prunekit_handle = None
        super().clean()


def stats_path(path: str | Path) -> Path:
    """Where this process writes ``prunekit_stats``: the path itself, or ``NAME.rankR.json`` per rank when
    several processes run (each rank prunes its own share of the requests)."""
    path = Path(path)
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return path
    return path.with_name(f"{path.stem}.rank{int(os.environ.get('RANK', '0'))}{path.suffix or '.json'}")


def default_device(requested: Any) -> str:
    """The device to load on: what was asked for, except CUDA on a host without a GPU (then the CPU)."""
    import torch

    device = str(requested) if requested else ""
    if device.startswith("cuda") and not torch.cuda.is_available():
        eval_logger.warning(f"prunekit: device={device} but no CUDA GPU is visible; using the CPU.")
        return "cpu"
    return device or ("cuda" if torch.cuda.is_available() else "cpu")


def _base_kwargs(base_cls: type, base: str, kwargs: dict[str, Any]) -> dict[str, Any]:
    """Defaults prunekit needs from the wrapped class: SDPA attention, an available device and device map."""
    import torch

    kwargs = dict(kwargs)
    params = inspect.signature(base_cls.__init__).parameters
    if "attn_implementation" in params and kwargs.get("attn_implementation") is None:
        kwargs["attn_implementation"] = "sdpa"  # prunekit's runtime needs sdpa or eager
    if "max_batch_size" in kwargs and "max_batch_size" not in params:
        kwargs.pop("max_batch_size")  # the base classes reject unknown arguments
    if base == "llava_hf" and int(str(kwargs.get("batch_size", 1))) != 1:
        raise ConfigError(f"lmms-eval's llava_hf model runs one request at a time; pass --batch_size 1 (got "
                          f"{kwargs['batch_size']}). Use several processes for throughput (see the docs).")
    if "device" in params:
        kwargs["device"] = default_device(kwargs.get("device"))
    single_process = int(os.environ.get("WORLD_SIZE", "1")) <= 1
    if base == "llava_hf" and not kwargs.get("device_map") and (single_process or not torch.cuda.is_available()):
        kwargs["device_map"] = kwargs.get("device", "cpu")  # transformers >= 5 rejects llava_hf's default ""
    return kwargs
