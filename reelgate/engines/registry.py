"""Engines by name. Heavy engines are imported only when asked for."""

from __future__ import annotations

from reelgate.config import Settings
from reelgate.core.errors import EngineUnavailable
from reelgate.engines.base import Engine, RemoteEngine
from reelgate.store.db import Database

ENGINE_NAMES = ("preview", "upstream", "diffusers", "openai-videos")


def load_engine(name: str, settings: Settings, db: Database | None = None) -> Engine | RemoteEngine:
    """The engine called ``name``; remote engines keep their state in ``db``."""
    if name == "preview":
        from reelgate.engines.preview import PreviewEngine

        return PreviewEngine(long_side=settings.preview_long_side)
    if name == "diffusers":
        from reelgate.engines.diffusers.engine import DiffusersEngine

        return DiffusersEngine(settings)
    if name == "upstream":
        from reelgate.engines.upstream import UpstreamEngine

        if db is None:
            raise EngineUnavailable("the upstream engine keeps its key pool in the database")
        return UpstreamEngine(settings, db)
    if name == "openai-videos":
        from reelgate.engines.openai_videos import OpenAIVideosEngine

        if db is None:
            raise EngineUnavailable("the openai-videos engine keeps its slots in the database")
        return OpenAIVideosEngine(settings, db)
    raise EngineUnavailable(
        f"unknown engine {name!r}; this build provides: {', '.join(ENGINE_NAMES)}"
    )
