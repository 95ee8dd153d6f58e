"""The ``openai-videos`` engine: forwards tasks to an OpenAI-style ``/v1/videos`` server
(SGLang-Diffusion, vLLM-Omni, FastVideo, another reelgate) durably."""

from reelgate.engines.openai_videos.engine import OpenAIVideosEngine

__all__ = ["OpenAIVideosEngine"]
