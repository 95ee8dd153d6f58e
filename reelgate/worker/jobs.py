"""Turning a claimed task into an engine spec: parse its params, fetch and check its media."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from reelgate.core.catalogue import Family, ModelSpec
from reelgate.core.seeds import request_seed
from reelgate.engines.base import ImageToVideoSpec, RenderSpec, VideoEditSpec
from reelgate.media.fetch import MediaFetcher
from reelgate.wire import ImageToVideoRequest, VideoEditRequest
from reelgate.wire.requests import parse_size


@dataclass(frozen=True)
class PreparedJob:
    spec: RenderSpec
    #: Length of the source clip of an edit (billing is per input second).
    input_seconds: float | None


def prepare(
    model: ModelSpec, params: dict[str, object], fetcher: MediaFetcher, scratch: Path
) -> PreparedJob:
    request = model.parse(params)
    seed = request_seed(model.path, params)
    if model.family is Family.IMAGE_TO_VIDEO:
        assert isinstance(request, ImageToVideoRequest)
        first = fetcher.fetch_image(request.first_image_url, "firstImageUrl", scratch)
        last = (
            fetcher.fetch_image(request.last_image_url, "lastImageUrl", scratch)
            if request.last_image_url
            else None
        )
        spec: RenderSpec = ImageToVideoSpec(
            prompt=request.prompt,
            first_image=first.path,
            last_image=last.path if last else None,
            duration=request.duration,
            sound=request.sound,
            multi_shot=request.multi_shot,
            shot_type=request.shot_type,
            shots=tuple(request.shots()),
            seed=seed,
            model=model.path,
            size=parse_size(request.size) if request.size else None,
        )
        return PreparedJob(spec, None)
    assert isinstance(request, VideoEditRequest)
    video = fetcher.fetch_video(request.video_url, "videoUrl", scratch)
    images = [
        fetcher.fetch_image(url, f"imageUrls[{i}]", scratch).path
        for i, url in enumerate(request.image_urls or [])
    ]
    spec = VideoEditSpec(
        prompt=request.prompt,
        video=video.path,
        reference_images=tuple(images),
        keep_original_sound=request.keep_original_sound,
        seed=seed,
        model=model.path,
    )
    return PreparedJob(spec, video.duration)
