"""Loading pipelines from local directories, once per worker process, placed as configured.

Weights come only from local directories unless ``allow_hub`` is set: the Hub is never
contacted at run time otherwise (``HF_HUB_OFFLINE`` is set for the load). torch and diffusers are
imported here, lazily, so reelgate runs without the ``diffusers`` extra until this engine is used.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from reelgate.config import DiffusersModel, DiffusersSettings
from reelgate.core.errors import EngineUnavailable

INSTALL_HINT = "install it with: pip install 'reelgate[diffusers]'"


def import_torch() -> Any:
    """torch, or a clear error naming the extra that provides it."""
    try:
        import torch
    except ImportError:
        raise EngineUnavailable(f"the diffusers engine needs torch; {INSTALL_HINT}") from None
    return torch


def import_diffusers() -> Any:
    try:
        import diffusers
    except ImportError:
        raise EngineUnavailable(f"the diffusers engine needs diffusers; {INSTALL_HINT}") from None
    return diffusers


def device_of(settings: DiffusersSettings) -> str:
    if settings.device != "auto":
        return settings.device
    return "cuda" if import_torch().cuda.is_available() else "cpu"


def weights_present(model: DiffusersModel) -> bool:
    """A local pipeline directory: ``model_index.json`` is what diffusers reads first."""
    return (model.path / "model_index.json").is_file()


@contextmanager
def _hub_access(allowed: bool) -> Iterator[None]:
    """No Hub access during a load unless the operator allowed it."""
    names = ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")
    saved = {name: os.environ.get(name) for name in names}
    if not allowed:
        for name in names:
            os.environ[name] = "1"
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


class PipelineCache:
    """Each configured model's pipeline, loaded on first use and kept warm."""

    def __init__(self, settings: DiffusersSettings) -> None:
        self.settings = settings
        self._pipelines: dict[str, Any] = {}
        self._lock = threading.Lock()

    def get(self, name: str) -> Any:
        with self._lock:
            if name not in self._pipelines:
                self._pipelines[name] = self.load(name)
            return self._pipelines[name]

    def load(self, name: str) -> Any:
        """Load model ``name`` as an operator configured it (the path the tests take too)."""
        model = self.settings.models[name]
        torch = import_torch()
        diffusers = import_diffusers()
        if not weights_present(model) and not self.settings.allow_hub:
            raise EngineUnavailable(
                f"no pipeline for model {name!r} at {model.path} (model_index.json is missing); "
                "download the weights there, or set REELGATE_DIFFUSERS__ALLOW_HUB=true"
            )
        with _hub_access(self.settings.allow_hub):
            pipeline = diffusers.DiffusionPipeline.from_pretrained(
                str(model.path),
                dtype=getattr(torch, model.dtype),
                local_files_only=not self.settings.allow_hub,
            )
        pipeline.set_progress_bar_config(disable=True)
        device = device_of(self.settings)
        if model.offload == "model":
            pipeline.enable_model_cpu_offload(device=device)
        elif model.offload == "sequential":
            pipeline.enable_sequential_cpu_offload(device=device)
        else:
            pipeline.to(device)
        if model.vae_tiling and hasattr(pipeline.vae, "enable_tiling"):
            pipeline.vae.enable_tiling()
        if model.attention_backend:
            pipeline.transformer.set_attention_backend(model.attention_backend)
        return pipeline

    def release(self) -> None:
        """Free what a failed or cancelled call left on the GPU (the pipelines stay loaded)."""
        torch = import_torch()
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
