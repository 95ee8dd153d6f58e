"""Request bodies of the Kling O3 endpoints, with the contract's fields, defaults and limits.

Each model endpoint has one class here, generic over the type of its media fields: on the wire a
media field is a URL (``MediaUrl``, what the server validates); the SDK parametrises the same
classes with a URL, a local path or bytes, which it uploads before sending. The rules (lengths,
ranges, strict JSON types, the multi-shot arithmetic) are written once, here.
"""

from __future__ import annotations

from typing import Annotated, Any, ClassVar, Generic, Literal, TypeVar

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    PlainValidator,
    StrictInt,
    StrictStr,
    WithJsonSchema,
    model_validator,
)

from reelgate.wire._base import WireRequest

PROMPT_MAX = 2500
MIN_DURATION, MAX_DURATION = 3, 15
MAX_REFERENCE_IMAGES = 4
MAX_SHOTS = 6
#: A media field carries at most this much text (a ``data:`` URI of about 6 MB).
MEDIA_URL_MAX = 8 * 1024 * 1024
#: Any other URL is at most this long (an http(s) link, one of ours).
URL_MAX = 2048
#: ``elementList``: at most this many references, each a string of at most ``ELEMENT_TEXT_MAX``
#: characters or a flat object of at most ``ELEMENT_FIELDS_MAX`` fields (keys of at most
#: ``ELEMENT_KEY_MAX`` characters, values strings, numbers, booleans or null).
MAX_ELEMENTS = 7
ELEMENT_TEXT_MAX = 256
ELEMENT_FIELDS_MAX, ELEMENT_KEY_MAX = 8, 64
#: The longest ``duration`` string of a ``multiPrompt`` object (``"5"``).
SHOT_DURATION_TEXT_MAX = 8
#: The longest ``webhookUrl``.
WEBHOOK_URL_MAX = 2048
#: ``size``: each side an even number of pixels in this range (H.264's 4:2:0 needs even sides).
MIN_SIDE, MAX_SIDE = 64, 3840
#: ``seed``: a 32-bit unsigned number, as engines seed their generators.
MAX_SEED = 2**32 - 1

Prompt = Annotated[
    StrictStr,
    Field(min_length=1, max_length=PROMPT_MAX, description="What to generate (1–2500 characters)."),
]


def parse_size(value: str) -> tuple[int, int]:
    """``WIDTHxHEIGHT`` as (width, height); ``ValueError`` saying the rule it breaks."""
    width, x, height = value.strip().lower().partition("x")
    if not (x and width.isdigit() and height.isdigit() and len(width) < 6 and len(height) < 6):
        raise ValueError(f"size must be WIDTHxHEIGHT in pixels, e.g. 1280x720; not {value!r}")
    sides = int(width), int(height)
    if any(not MIN_SIDE <= side <= MAX_SIDE or side % 2 for side in sides):
        raise ValueError(
            f"size sides must be even numbers of pixels from {MIN_SIDE} to {MAX_SIDE}; "
            f"not {value!r}"
        )
    return sides


def _size(value: str) -> str:
    width, height = parse_size(value)
    return f"{width}x{height}"


#: reelgate extension: the output's ``WIDTHxHEIGHT``.
Size = Annotated[StrictStr, Field(max_length=16), AfterValidator(_size)]


def _url_length(value: str) -> str:
    if len(value) > URL_MAX and value[:5].lower() != "data:":
        raise ValueError(f"a URL is at most {URL_MAX} characters (only data: URIs are longer)")
    return value


#: A media input on the wire: an http(s) URL, a link from ``media/upload/binary``, or a
#: ``data:`` URI.
MediaUrl = Annotated[
    StrictStr, Field(min_length=1, max_length=MEDIA_URL_MAX), AfterValidator(_url_length)
]


def _element(value: Any) -> str | dict[str, Any]:
    """An ``elementList`` item as it may be stored: a short id, or a small flat object."""
    if isinstance(value, str):
        if len(value) > ELEMENT_TEXT_MAX:
            raise ValueError(f"an element id is at most {ELEMENT_TEXT_MAX} characters")
        return value
    if not isinstance(value, dict):
        raise ValueError("an element is an id (a string) or an object")
    if len(value) > ELEMENT_FIELDS_MAX:
        raise ValueError(f"an element object has at most {ELEMENT_FIELDS_MAX} fields")
    for key, item in value.items():
        if not isinstance(key, str) or len(key) > ELEMENT_KEY_MAX:
            raise ValueError(f"element field names are at most {ELEMENT_KEY_MAX} characters")
        if item is not None and not isinstance(item, (str, int, float)):
            raise ValueError(f"element field {key!r} must be a string, a number, a boolean or null")
        if isinstance(item, str) and len(item) > ELEMENT_TEXT_MAX:
            raise ValueError(f"element field {key!r} is longer than {ELEMENT_TEXT_MAX} characters")
    return value


_ELEMENT_SCHEMA = {
    "anyOf": [
        {"type": "string", "maxLength": ELEMENT_TEXT_MAX},
        {
            "type": "object",
            "maxProperties": ELEMENT_FIELDS_MAX,
            "additionalProperties": {
                "anyOf": [
                    {"type": "string", "maxLength": ELEMENT_TEXT_MAX},
                    {"type": "number"},
                    {"type": "boolean"},
                    {"type": "null"},
                ]
            },
        },
    ]
}
#: A Kling element reference (pro tier only): an id, or a flat object; stored, never interpreted.
ElementRef = Annotated[
    str | dict[str, Any], PlainValidator(_element), WithJsonSchema(_ELEMENT_SCHEMA)
]
#: A ``multiPrompt`` item given as a plain string.
ShotText = Annotated[StrictStr, Field(max_length=PROMPT_MAX)]

M = TypeVar("M")

#: The image-to-video example of RunningHub's documentation page (contract §2.3).
SEED_IMAGE_TO_VIDEO: dict[str, Any] = {
    "prompt": "The girl walks gracefully from the background, her skirt swaying naturally with "
    "each step. The camera follows her as red lanterns on the street sway in the wind.",
    "firstImageUrl": "https://example.com/input/openapi/first.jpg",
    "lastImageUrl": "https://example.com/input/openapi/last.jpg",
    "duration": 5,
    "sound": True,
    "multiShot": False,
    "shotType": "customize",
}
#: The video-edit example of RunningHub's documentation page (contract §3.2).
SEED_VIDEO_EDIT: dict[str, Any] = {
    "prompt": "Replace the man's clothes in the video with those in Figure 1.",
    "videoUrl": "https://example.com/input/openapi/source.mp4",
    "imageUrls": ["https://example.com/input/openapi/outfit.jpg"],
    "keepOriginalSound": True,
}


class ShotPrompt(WireRequest):
    """One element of ``multiPrompt`` in Kling's object shape."""

    index: StrictInt | None = Field(None, description="The shot's position (informative).")
    prompt: Prompt
    #: Seconds; Kling sends a string (``"5"``), some clients an integer. Both are accepted.
    duration: StrictInt | Annotated[StrictStr, Field(max_length=SHOT_DURATION_TEXT_MAX)] | None = (
        Field(None, description='Whole seconds, as an integer or a string of digits ("5").')
    )

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


class ModelRequest(WireRequest):
    """The body of one model endpoint; ``model_path`` says which."""

    #: ``vendor/action`` under ``/openapi/v2/``.
    model_path: ClassVar[str]
    #: Wire names of the fields that hold media, in the order a worker fetches them.
    media_fields: ClassVar[tuple[str, ...]]
    #: Fields the contract marks required although they have a default: always sent.
    always_sent: ClassVar[frozenset[str]] = frozenset()
    #: Fields that say where the answer goes rather than what to generate: not task parameters.
    delivery_fields: ClassVar[frozenset[str]] = frozenset({"webhook_url"})

    webhook_url: Annotated[StrictStr, Field(min_length=1, max_length=WEBHOOK_URL_MAX)] | None = (
        Field(
            None,
            description="reelgate extension: an http(s) URL that receives the `TASK_END` event "
            "(signed the Standard Webhooks way) when the task ends.",
        )
    )
    seed: Annotated[StrictInt, Field(ge=0, le=MAX_SEED)] | None = Field(
        None,
        description="reelgate extension: the render seed (0–4294967295); without it the seed is "
        "derived from the request, so the same request renders the same video either way.",
    )

    @classmethod
    def model_parametrized_name(cls, params: tuple[Any, ...]) -> str:
        # The wire and the SDK parametrise the same class; both are that model to a reader.
        return cls.__name__

    def to_payload(self) -> dict[str, Any]:
        """The JSON body with wire names: what was given, and the fields the contract requires;
        empty optional fields are left out (contract §1).

        Media values are left as they are (the SDK replaces local ones by upload links).
        """
        given = self.model_fields_set | self.always_sent
        return self.model_dump(by_alias=True, exclude_none=True, include=given)

    def parameters(self) -> dict[str, Any]:
        """What the task is asked to generate, by Python name: every field but the delivery
        ones, empty ones left out (what the server stores and compares for idempotency)."""
        return self.model_dump(mode="json", exclude_none=True, exclude=set(self.delivery_fields))

    def media(self) -> dict[str, list[Any]]:
        """The media values by wire field name, in order (what a worker must fetch)."""
        found: dict[str, list[Any]] = {}
        by_alias = {info.alias or name: name for name, info in type(self).model_fields.items()}
        for wire_name in self.media_fields:
            value = getattr(self, by_alias[wire_name])
            if value is None:
                continue
            found[wire_name] = list(value) if isinstance(value, list) else [value]
        return found


class ImageToVideoRequest(ModelRequest, Generic[M]):
    """Image-to-video: a first (and optional last) frame, 3–15 s, sound, multi-shot."""

    model_config = ConfigDict(json_schema_extra={"examples": [SEED_IMAGE_TO_VIDEO]})
    media_fields = ("firstImageUrl", "lastImageUrl")
    always_sent = frozenset({"duration", "sound"})

    prompt: Prompt
    first_image_url: M = Field(description="The first frame: JPG or PNG, at most 50 MB.")
    last_image_url: M | None = Field(
        None, description="The last frame (optional; `null` is accepted as absent)."
    )
    duration: Annotated[StrictInt, Field(ge=MIN_DURATION, le=MAX_DURATION)] = Field(
        5, description="Seconds of video, 3–15."
    )
    sound: bool = Field(True, description="Generate sound with the video.")
    size: Size | None = Field(
        None,
        description="reelgate extension: the output's `WIDTHxHEIGHT` in pixels (even sides, "
        "64–3840); the first frame is cropped to cover it. Without it the engine follows the "
        "first frame's aspect ratio at its own resolution.",
        examples=["1280x720"],
    )
    multi_shot: bool = Field(
        False, description="Several shots: `shotType` and `multiPrompt` then describe them."
    )
    shot_type: Literal["customize", "intelligence"] = Field(
        "customize",
        description="`customize`: the shots of `multiPrompt`; `intelligence`: the model cuts.",
    )
    multi_prompt: list[ShotText | ShotPrompt] | None = Field(
        None,
        description="Up to 6 shots: strings, or `{index, prompt, duration}` objects whose "
        "durations add up to `duration` (shots without one share what is left).",
        json_schema_extra={"maxItems": MAX_SHOTS},
    )

    @model_validator(mode="after")
    def _check_shots(self) -> ImageToVideoRequest[M]:
        # Bounded even when multiShot is false and the shots are ignored: they are stored.
        if self.multi_prompt is not None and len(self.multi_prompt) > MAX_SHOTS:
            raise ValueError(
                f"multiPrompt has at most {MAX_SHOTS} items, got {len(self.multi_prompt)}"
            )
        if self.multi_shot:
            self.shots()  # raises ValueError with the rule that failed
        return self

    def shots(self) -> list[Shot]:
        """The shots to render: one for a single-shot request, the multiPrompt segments otherwise.

        ``intelligence`` lets the engine choose its own cut points, so it returns one shot per
        given prompt (possibly none) and the engine decides how to split the rest.
        """
        if not self.multi_shot:
            return [Shot(prompt=self.prompt, seconds=self.duration)]
        items = self.multi_prompt or []
        if self.shot_type == "customize" and not items:
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


class VideoEditRequest(ModelRequest, Generic[M]):
    """Video-edit: a 3–10 s MP4 edited by a prompt, with up to 4 reference images."""

    model_config = ConfigDict(json_schema_extra={"examples": [SEED_VIDEO_EDIT]})
    media_fields = ("videoUrl", "imageUrls")
    always_sent = frozenset({"keep_original_sound"})

    prompt: Prompt
    video_url: M = Field(description="The source video: MP4, 3–10 s, at most 50 MB.")
    image_urls: Annotated[list[M], Field(max_length=MAX_REFERENCE_IMAGES)] | None = Field(
        None, description="Up to 4 reference images (JPG or PNG)."
    )
    keep_original_sound: bool = Field(True, description="Keep the source video's audio track.")


_ELEMENTS = Field(
    None,
    description="Kling element references (pro tier only): up to 7 ids, or flat objects.",
    max_length=MAX_ELEMENTS,
)


class KlingO3ProImageToVideo(ImageToVideoRequest[M], Generic[M]):
    """``kling-video-o3-pro/image-to-video``: a video from a first (and optional last) frame."""

    model_path = "kling-video-o3-pro/image-to-video"
    element_list: list[ElementRef] | None = _ELEMENTS


class KlingO3StdImageToVideo(ImageToVideoRequest[M], Generic[M]):
    """``kling-video-o3-std/image-to-video``: as pro, cheaper, without ``elementList``."""

    model_path = "kling-video-o3-std/image-to-video"


class KlingO3ProVideoEdit(VideoEditRequest[M], Generic[M]):
    """``kling-video-o3-pro/video-edit``: edit a 3–10 s MP4 with a prompt and reference images."""

    model_path = "kling-video-o3-pro/video-edit"
    element_list: list[ElementRef] | None = _ELEMENTS


class KlingO3StdVideoEdit(VideoEditRequest[M], Generic[M]):
    """``kling-video-o3-std/video-edit``: as pro, cheaper, without ``elementList``."""

    model_path = "kling-video-o3-std/video-edit"


#: Every model endpoint's request class, generic over its media type.
MODEL_REQUESTS: tuple[type[ModelRequest], ...] = (
    KlingO3ProImageToVideo,
    KlingO3StdImageToVideo,
    KlingO3ProVideoEdit,
    KlingO3StdVideoEdit,
)

#: The request model the server validates each model path with (media fields are URLs).
WIRE_REQUESTS: dict[str, type[ModelRequest]] = {
    model.model_path: model[MediaUrl]  # type: ignore[index]
    for model in MODEL_REQUESTS
}


class TaskRef(WireRequest):
    """``/openapi/v2/query``: which task. An integer id is accepted as well as the string."""

    task_id: StrictStr | StrictInt | None = Field(
        None,
        description="The 19-digit id a submit answered with.",
        examples=["2009191190196789249"],
    )


class KeyedTaskRef(TaskRef):
    """The v1 task endpoints: the key travels in the body (the Bearer header is the fallback)."""

    api_key: StrictStr | None = Field(None, description="The API key (v1 style).")


class AccountRequest(WireRequest):
    """``/uc/openapi/accountStatus``: the key travels in the body, spelled ``apikey``."""

    model_config = ConfigDict(alias_generator=None)

    apikey: StrictStr | None = Field(
        None, description="The API key (all lower case, as documented)."
    )
