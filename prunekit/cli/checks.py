"""Argument checks shared by the commands: counts, devices, presets, model names and loading.

Everything here runs before a model is loaded, so bad input fails in a second with one line that
says the fix. torch and transformers are imported only inside the functions that need them.
"""

from __future__ import annotations

import argparse
import os
import re
import socket
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from prunekit.errors import PrunekitError, UnsupportedModelError

if TYPE_CHECKING:
    from torch import nn

__all__ = ["positive_int", "non_negative_int", "resolve_device", "check_pipeline", "check_model_name",
           "load_pretrained", "add_loading_args", "split_options"]

_REPO_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
HUB_HOST = "huggingface.co"


def positive_int(text: str) -> int:
    """argparse type: an integer >= 1."""
    value = _int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text!r}")
    return value


def non_negative_int(text: str) -> int:
    """argparse type: an integer >= 0."""
    value = _int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must not be negative, got {text!r}")
    return value


def _int(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be an integer, got {text!r}") from None


def resolve_device(text: str) -> str:
    """``auto`` -> ``cuda`` if available else ``cpu``; ``cpu``, ``cuda``, ``cuda:N`` checked against this host."""
    import torch

    if text == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if text == "cpu":
        return text
    match = re.fullmatch(r"cuda(?::(\d+))?", text)
    if match is None:
        raise PrunekitError(f"--device {text!r} is not supported; use auto, cpu, cuda or cuda:N.")
    if not torch.cuda.is_available():
        raise PrunekitError(f"--device {text}: no CUDA GPU is visible on this host; use --device cpu (or auto).")
    index = int(match.group(1) or 0)
    if index >= torch.cuda.device_count():
        raise PrunekitError(f"--device {text}: this host has {torch.cuda.device_count()} CUDA GPU(s); "
                            f"use cuda:0 to cuda:{torch.cuda.device_count() - 1}.")
    return text


DEEP_MODEL_LAYERS = 10_000
"""Depth assumed by the model-free checks: layer indices are checked against the real depth at apply."""


def check_pipeline(preset: str, budget: float | None, mode: str) -> None:
    """Resolve the preset (or config file) and budget now, before any model is loaded."""
    from prunekit.budget import Budget
    from prunekit.pipeline import Pipeline

    check_without_model(Pipeline.from_preset(preset, Budget(budget, mode) if budget is not None else None))


def check_without_model(pipeline: object) -> None:
    """Build every stage and plan the schedule for a long video on a deep model: what can fail without a model
    (unsorted layers, fractions outside (0, 1], infeasible budgets) fails here."""
    if pipeline.budget is None or pipeline.budget.retain < 1.0:  # type: ignore[attr-defined]
        pipeline.scheduler.plan(DEEP_MODEL_LAYERS, DEEP_MODEL_LAYERS, pipeline.budget, min_keep=1)  # type: ignore[attr-defined]


def check_model_name(name: str) -> None:
    """A local folder that exists, or a Hub id ``org/name``; anything else is a one-line error."""
    path = Path(name).expanduser()
    if path.is_dir():
        return
    if path.exists():
        raise PrunekitError(f"--model {name!r} is a file; pass the checkpoint's folder (with config.json).")
    if name.startswith((".", "/", "~")) or not _REPO_ID.match(name):
        raise PrunekitError(f"--model {name!r}: no such folder, and not a Hub id of the form 'org/name'. Pass a "
                            "local checkpoint folder, or an id such as 'llava-hf/llava-onevision-qwen2-0.5b-ov-hf'.")


def add_loading_args(parser: argparse.ArgumentParser) -> None:
    """``--allow-pickle``: the opt-out of safetensors-only loading."""
    parser.add_argument("--allow-pickle", action="store_true",
                        help="also load pickle (.bin) weights when a checkpoint has no safetensors (they can run "
                             "code: only for checkpoints you trust)")


def load_pretrained(name: str, device: str, *, allow_pickle: bool = False,
                    check_processor: Callable[[object], None] | None = None) -> tuple[nn.Module, object]:
    """``(model, processor)`` from a local folder or the Hub; safetensors only unless ``allow_pickle``.

    ``check_processor`` runs on the processor before the weights load (e.g. to require a chat template).

    A Hub id not in the local cache fails at once when the Hub cannot be reached (instead of minutes of
    retries), saying how to use a local folder.
    """
    import torch
    from transformers import AutoModelForImageTextToText, AutoProcessor

    check_model_name(name)
    local_only = Path(name).expanduser().is_dir() or _offline() or not _hub_reachable()
    dtype = torch.bfloat16 if device.startswith("cuda") else torch.float32
    try:
        processor = AutoProcessor.from_pretrained(name, local_files_only=local_only)
        if check_processor is not None:
            check_processor(processor)
        model = AutoModelForImageTextToText.from_pretrained(
            name, dtype=dtype, attn_implementation="sdpa", local_files_only=local_only,
            use_safetensors=None if allow_pickle else True)
    except OSError as exc:
        raise PrunekitError(_load_failure(name, exc, local_only, allow_pickle)) from None
    except ValueError as exc:
        raise UnsupportedModelError(f"{name!r} is not a video LLM transformers can load: {exc}") from None
    return model.to(device).eval(), processor


def _load_failure(name: str, exc: OSError, local_only: bool, allow_pickle: bool) -> str:
    text = str(exc)
    if not allow_pickle and "safetensors" in text.lower():
        return (f"{name!r} has no safetensors weights; prunekit loads only safetensors by default. If you trust "
                "the checkpoint, pass --allow-pickle to load its .bin weights.")
    if local_only and not Path(name).expanduser().is_dir():
        return (f"{name!r} is not in the local Hugging Face cache and the Hub is not reachable (or HF_HUB_OFFLINE "
                "is set). Download it where there is network (huggingface-cli download NAME --local-dir DIR) and "
                "pass --model DIR.")
    return f"could not load {name!r}: {' '.join(text.split())}"


def _offline() -> bool:
    return any(os.environ.get(v, "").lower() in ("1", "true", "yes", "on")
               for v in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"))


def _hub_reachable(timeout: float = 3.0) -> bool:
    """Whether the Hub endpoint answers a TCP connection within ``timeout`` seconds."""
    from urllib.parse import urlparse

    endpoint = urlparse(os.environ.get("HF_ENDPOINT", f"https://{HUB_HOST}"))
    try:
        with socket.create_connection((endpoint.hostname or HUB_HOST, endpoint.port or 443), timeout=timeout):
            return True
    except OSError:
        return False


def split_options(text: str | None) -> list[str] | None:
    """``--options "a|b|c"`` -> ``["a", "b", "c"]``; empty options or fewer than two are an error."""
    if text is None:
        return None
    options = [o.strip() for o in text.split("|")]
    if len(options) < 2 or any(not o for o in options):
        raise PrunekitError(f"--options {text!r}: give two or more non-empty options separated by '|', "
                            "e.g. --options 'red|green|blue'.")
    return options
