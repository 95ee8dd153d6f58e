"""Request bodies of the Kling O3 endpoints, with the contract's fields, defaults and limits.

Unknown fields are ignored (as RunningHub does); wrong types and out-of-range values are
rejected with ``InvalidParameters`` (1007) naming the field and the rule. Types are strict: a
``"5"`` where the contract says integer, or ``"true"`` where it says boolean, is an error, as
RunningHub's parameter-typing rules require (contract §1).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictInt, StrictStr, model_validator

PROMPT_MAX = 2500
MIN_DURATION, MAX_DURATION = 3, 15
MAX_REFERENCE_IMAGES = 4
MAX_SHOTS = 6

Prompt = Annotated[StrictStr, Field(min_length=1, max_length=PROMPT_MAX)]
MediaUrl = Annotated[StrictStr, Field(min_length=1, max_length=8 * 1024 * 1024)]


class _Body(BaseModel):
    model_config = ConfigDict(extra="ignore", strict=True, frozen=True)


class ShotPrompt(_Body):
    """One element of ``multiPrompt`` in Kling's object shape."""

    index: StrictInt | None = None
    prompt: Prompt
    #: Seconds; Kling sends a string (``"5"``), some clients an integer. Both are accepted.
    duration: StrictInt | StrictStr | None = None

    def seconds(self) -> int | None:
        if self.duration is None:
            return None
        if isinstance(self.duration, int):
            return self.duration
        text = self.duration.strip()
        if not text.isdigit():
            raise ValueError(
                f"multiPrompt duration must be a whole number of seconds, got {text!r}"
            )
        return int(text)


class Shot(BaseModel):
    """A normalised shot: what an engine renders for one segment of a multi-shot video."""

    model_config = ConfigDict(frozen=True)

    prompt: str
    seconds: int


ElementRef = StrictStr | dict[str, Any]


class ImageToVideoRequest(_Body):
    """``kling-video-o3-{pro,std}/image-to-video``."""

    prompt: Prompt
    firstImageUrl: MediaUrl
    lastImageUrl: MediaUrl | None = None
    duration: Annotated[StrictInt, Field(ge=MIN_DURATION, le=MAX_DURATION)] = 5
    sound: bool = True
    multiShot: bool = False
    shotType: Literal["customize", "intelligence"] = "customize"
    multiPrompt: list[StrictStr | ShotPrompt] | None = None

    @model_validator(mode="after")
    def _check_shots(self) -> ImageToVideoRequest:
        if self.multiShot:
            self.shots()  # raises ValueError with the rule that failed
        return self

    def shots(self) -> list[Shot]:
        """The shots to render: one for a single-shot request, the multiPrompt segments otherwise.

        ``intelligence`` lets the engine choose its own cut points, so it returns one shot per
        given prompt (possibly none) and the engine decides how to split the rest.
        """
        if not self.multiShot:
            return [Shot(prompt=self.prompt, seconds=self.duration)]
        items = self.multiPrompt or []
        if self.shotType == "customize" and not items:
            raise ValueError(
                "multiPrompt is required when multiShot is true and shotType is customize"
            )
        if len(items) > MAX_SHOTS:
            raise ValueError(f"multiPrompt has at most {MAX_SHOTS} items, got {len(items)}")
        if not items:
            return []
        prompts: list[str] = []
        given: list[int | None] = []
        for item in items:
            if isinstance(item, str):
                if not item.strip():
                    raise ValueError("multiPrompt items must not be empty")
                prompts.append(item)
                given.append(None)
            else:
                prompts.append(item.prompt)
                given.append(item.seconds())
        if any(g is not None and g < 1 for g in given):
            raise ValueError("multiPrompt durations must be at least 1 second")
        fixed = sum(g for g in given if g is not None)
        free = [i for i, g in enumerate(given) if g is None]
        if not free:
            if fixed != self.duration:
                raise ValueError(
                    f"multiPrompt durations add up to {fixed} s but duration is {self.duration} s"
                )
            return [
                Shot(prompt=p, seconds=int(g or 0)) for p, g in zip(prompts, given, strict=True)
            ]
        remaining = self.duration - fixed
        if remaining < len(free):
            raise ValueError(
                f"multiPrompt leaves {remaining} s for {len(free)} segments without a duration"
            )
        share, extra = divmod(remaining, len(free))
        seconds = list(given)
        for n, i in enumerate(free):
            seconds[i] = share + (1 if n < extra else 0)
        return [Shot(prompt=p, seconds=int(s or 0)) for p, s in zip(prompts, seconds, strict=True)]


class ProImageToVideoRequest(ImageToVideoRequest):
    """The pro tier also takes ``elementList`` (Kling element references)."""

    elementList: list[ElementRef] | None = None


class VideoEditRequest(_Body):
    """``kling-video-o3-{pro,std}/video-edit``."""

    prompt: Prompt
    videoUrl: MediaUrl
    imageUrls: Annotated[list[MediaUrl], Field(max_length=MAX_REFERENCE_IMAGES)] | None = None
    keepOriginalSound: bool = True


class ProVideoEditRequest(VideoEditRequest):
    elementList: list[ElementRef] | None = None


def media_fields(request: BaseModel) -> dict[str, list[str]]:
    """The request's media URLs by field name, in order (what a worker must fetch)."""
    if isinstance(request, ImageToVideoRequest):
        fields = {"firstImageUrl": [request.firstImageUrl]}
        if request.lastImageUrl:
            fields["lastImageUrl"] = [request.lastImageUrl]
        return fields
    if isinstance(request, VideoEditRequest):
        return {"videoUrl": [request.videoUrl], "imageUrls": list(request.imageUrls or [])}
    return {}
