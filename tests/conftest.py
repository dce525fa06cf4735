"""Shared test setup: no hub access, Hypothesis profiles (``dev`` locally, ``ci`` under ``CI=true``)."""

from __future__ import annotations

import os

# No test may reach a model hub: set before transformers / huggingface_hub read their constants.
for _var in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_DATASETS_OFFLINE"):
    os.environ.setdefault(_var, "1")

import pytest  # noqa: E402
import torch  # noqa: E402

from prunekit.plugins import DISABLE_ENV, reload_plugins  # noqa: E402
from prunekit.testing import register_profiles  # noqa: E402

register_profiles()


@pytest.fixture
def builtin_plugins_only(monkeypatch: pytest.MonkeyPatch):
    """Hermetic registry: only the built-in plugins are loaded while the test runs."""
    monkeypatch.setenv(DISABLE_ENV, "1")
    registry = reload_plugins()
    yield registry
    monkeypatch.delenv(DISABLE_ENV)
    reload_plugins()


@pytest.fixture(scope="module")
def single_thread_torch():
    """One intra-op thread while a module runs: the property tests use tiny tensors, where extra
    threads only add contention (10-30x slower on a busy 2-core machine)."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)
