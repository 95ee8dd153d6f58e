"""Settings, read once from ``REELGATE_*`` environment variables and passed down.

Nested groups use ``__`` in the environment (``REELGATE_WORKER__LEASE_SECONDS=30``); the
operator-facing names of DESIGN §11 (``REELGATE_DATA_DIR``, ``REELGATE_DATABASE_URL``, …) are
top-level fields.
"""

from __future__ import annotations

import fnmatch
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

MB = 1024 * 1024
DAY = 86_400
#: The longest an S3 presigned URL (signature version 4) may be valid: seven days.
MAX_PRESIGNED_SECONDS = 7 * DAY
#: URL schemes ``rate_limit_storage`` accepts: ``limits``' Redis storage and its variants.
REDIS_SCHEMES = ("redis://", "rediss://", "redis+unix://", "valkey://", "valkeys://")


class MediaSettings(BaseModel):
    #: Largest image or video accepted by a media field (contract: 50 MB).
    max_input_bytes: int = 50 * MB
    #: Largest file accepted by ``/openapi/v2/media/upload/binary`` (contract: unstated; 50 MB).
    max_upload_bytes: int = 50 * MB
    #: Largest file accepted by the legacy ``/task/openapi/upload`` (contract: 30 MB).
    max_legacy_upload_bytes: int = 30 * MB
    fetch_timeout_seconds: float = 30.0
    max_redirects: int = 5
    min_image_side: int = 300
    max_image_ratio: float = 2.5
    min_video_seconds: float = 3.0
    max_video_seconds: float = 10.0
    #: Shortest and longest accepted video side in pixels. RunningHub's upstream (Kling) asks for
    #: 720–2160 px; reelgate accepts smaller clips by default so that tests and previews can use
    #: small files, and operators who want Kling's exact rule can set 720.
    min_video_side: int = 16
    max_video_side: int = 2160
    #: Largest image accepted, in bytes once decoded: width × height × channels × bytes per
    #: sample, read from the header before anything is decoded (16-bit samples count two bytes,
    #: palette and 1-bit images count as decoded to RGB or RGBA). A pixel count alone lets a
    #: small 16-bit PNG decode into gigabytes. The default admits a 4K 16-bit RGBA PNG (66 MB)
    #: and a 50-megapixel photo.
    max_decoded_image_bytes: int = 256 * MB
    #: Largest video frame accepted, in bytes once decoded to RGB(A), by the same count; read
    #: from the stream header, and decoders refuse any later frame larger than the header said.
    max_decoded_frame_bytes: int = 128 * MB
    #: Non-public networks (CIDR) that media URLs may reach even when private networks are
    #: refused, e.g. an object store on the LAN.
    allowed_networks: list[str] = []


class HttpSettings(BaseModel):
    """What the API reads of a request body before it refuses it (uploads: ``media``)."""

    #: Largest JSON body of the task, account and query endpoints.
    max_json_bytes: int = Field(default=1 * MB, ge=1024)
    #: Largest JSON body of a model endpoint (submit, price preview, passed-through models): room
    #: for ``data:`` URIs in media fields.
    max_model_json_bytes: int = Field(default=10 * MB, ge=1024)
    #: Largest body a v1 endpoint reads before it knows the key (no valid Bearer header): a key
    #: and a task id need far less.
    max_keyless_json_bytes: int = Field(default=16 * 1024, ge=1024)
    #: Deepest nesting of arrays and objects in a JSON body.
    max_json_depth: int = Field(default=32, ge=2, le=200)


class WorkerSettings(BaseModel):
    #: How long a claimed task stays ours without a heartbeat.
    lease_seconds: float = 30.0
    heartbeat_seconds: float = 5.0
    #: How many times a task may be claimed before a lost lease fails it with 1006.
    max_attempts: int = 3
    poll_seconds: float = 0.5
    sweep_seconds: float = 5.0
    #: On SIGTERM, how long running tasks may take to finish before they are handed back.
    shutdown_grace_seconds: float = 20.0


class WebhookSettings(BaseModel):
    """How ``TASK_END`` events are delivered to a task's ``webhookUrl``."""

    #: Seconds a receiver has to answer; a 2xx within it counts as delivered.
    timeout_seconds: float = 10.0
    #: How long failed deliveries are retried, counted from the first attempt (or from a
    #: ``retryWebhook``), before the event is marked FAILED.
    retry_for_seconds: float = 24 * 3600.0
    #: The first retry's delay; each further one doubles it (with full jitter), up to
    #: ``max_retry_interval_seconds``.
    first_retry_seconds: float = 5.0
    max_retry_interval_seconds: float = 3600.0
    #: Deliveries in flight at once, per worker process.
    concurrency: int = 8
    #: How often a worker looks for due deliveries.
    poll_seconds: float = 1.0
    #: Non-public networks (CIDR) that webhook URLs may reach when private networks are
    #: refused, e.g. a receiver on the LAN.
    allowed_networks: list[str] = []


class UpstreamSettings(BaseModel):
    """How the ``upstream`` engine uses the RunningHub-compatible server it forwards to."""

    #: Tasks each pool key may run at once; 0 reads it from the upstream's ``queue/status``.
    key_concurrency: int = 0
    #: Whether the upstream honours ``Idempotency-Key`` (reelgate does, RunningHub does not), so
    #: that a submit whose answer was lost may be repeated safely. Unset: everything but
    #: runninghub.ai / runninghub.cn is assumed to (set false for other servers that do not).
    idempotent: bool | None = None
    #: How long a key that answered rate-limited or queue-full is left alone.
    rest_seconds: float = 60.0
    #: How long a task waits for a free key, and keeps polling an unreachable upstream,
    #: before it fails (the upstream keeps results for about a day).
    max_wait_seconds: float = 6 * 3600.0
    #: Longest pause between two polls of an upstream task.
    max_poll_seconds: float = 10.0
    #: How often the pool refreshes each key's balance and concurrency.
    refresh_seconds: float = 300.0
    #: Seconds of one HTTP request to the upstream.
    timeout_seconds: float = 60.0


class VideosApiSettings(BaseModel):
    """How ``/v1/videos`` (OpenAI's Videos API) maps its requests onto the catalogue."""

    #: OpenAI model names to what they run: a catalogue model's vendor part (its family comes
    #: from the inputs: an image makes ``…/image-to-video``, a video ``…/video-edit``) or a whole
    #: catalogue path. A catalogue path is always accepted as a model name too.
    models: dict[str, str] = {
        "sora-2": "kling-video-o3-std",
        "sora-2-pro": "kling-video-o3-pro",
    }
    #: The model of a request that names none (OpenAI's default).
    default_model: str = "sora-2"
    #: Seconds of a request that says none (OpenAI's default: 4).
    default_seconds: int = Field(default=4, ge=1)
    #: ``WIDTHxHEIGHT`` of an image-to-video request that says none (OpenAI's default).
    default_size: str = "720x1280"
    #: ``openai-poll-after-ms`` while a video is not done: how long the SDK's ``poll()`` waits.
    poll_after_ms: int = Field(default=1000, ge=100)


class OpenAIVideosFields(BaseModel):
    """How a task becomes a ``POST /v1/videos`` form: the fields the server at the other end
    reads (the first frame always travels as the ``input_reference`` file)."""

    #: ``size`` (``WxH``: OpenAI, SGLang, vLLM-Omni), ``width_height`` (vLLM-Omni's ``width`` and
    #: ``height``) or ``none`` (the server's own size).
    size: Literal["size", "width_height", "none"] = "size"
    #: The field that asks for sound (vLLM-Omni: ``generate_sound``); unset: never sent, and a
    #: task that asks for sound gets a video as the server makes it.
    sound: str | None = "generate_sound"
    #: The field that carries the task's seed (derived from the request when it has none).
    seed: str | None = "seed"
    #: Fields sent with every request, e.g. ``{"num_inference_steps": 40, "fps": 16}``.
    extra: dict[str, str | int | float | bool] = {}


class OpenAIVideosSettings(BaseModel):
    """How the ``openai-videos`` engine uses the ``/v1/videos`` server it forwards to
    (SGLang-Diffusion, vLLM-Omni, FastVideo, another reelgate)."""

    #: The server's base URL, as the ``openai`` SDK's ``base_url``: ``http://gpu-host:8091/v1``.
    url: str | None = None
    #: Sent as ``Authorization: Bearer``; unset: no header (SGLang and vLLM-Omni need none).
    api_key: str | None = None
    #: The model name to ask for, by catalogue path or by family (``image-to-video``,
    #: ``video-edit``); a path wins over its family. Unset: no ``model`` (the server's own).
    models: dict[str, str] = {}
    #: ``WIDTHxHEIGHT`` of every image-to-video job; unset: the first frame's aspect ratio with
    #: ``long_side`` pixels on its long side, both sides multiples of ``size_multiple``.
    size: str | None = None
    long_side: int = Field(default=1280, ge=16)
    #: 16 for Wan, 32 for LTX-2.
    size_multiple: int = Field(default=16, ge=2)
    #: Jobs the server runs at once: the others wait in reelgate's queue (SGLang-Diffusion and
    #: vLLM-Omni keep theirs in memory, and generate one at a time).
    concurrency: int = Field(default=1, ge=1)
    #: Whether the server honours ``Idempotency-Key`` (another reelgate does; SGLang and
    #: vLLM-Omni do not), so that a create whose answer was lost may be sent again.
    idempotent: bool = False
    fields: OpenAIVideosFields = OpenAIVideosFields()
    #: How long a task waits for a free slot, and keeps polling a server that does not answer.
    max_wait_seconds: float = 6 * 3600.0
    #: Longest pause between two polls of a job.
    max_poll_seconds: float = 10.0
    #: Seconds of one HTTP request (a download streams for as long as it moves).
    timeout_seconds: float = 60.0


class DiffusersModel(BaseModel):
    """One open model of the ``diffusers`` engine (``REELGATE_DIFFUSERS__MODELS``)."""

    #: A local directory holding the pipeline in diffusers' format.
    path: Path
    #: ``wan-i2v`` (WanImageToVideoPipeline), ``wan-vace`` (WanVACEPipeline) or ``ltx2``
    #: (LTX2ConditionPipeline, video with sound).
    pipeline: Literal["wan-i2v", "wan-vace", "ltx2"]
    #: What it is used for: ``first_frame`` (from a first frame alone), ``last_frame`` (from a
    #: first and a last frame), ``edit``, ``sound`` (it makes the sound too).
    features: list[Literal["first_frame", "last_frame", "edit", "sound"]]
    dtype: Literal["bfloat16", "float16", "float32"] = "bfloat16"
    #: ``model`` moves each component to the GPU only while it runs; ``sequential`` each layer
    #: (slowest, least memory).
    offload: Literal["none", "model", "sequential"] = "none"
    #: Decode the video in tiles (less memory at large sizes).
    vae_tiling: bool = False
    #: diffusers' attention backend for the transformer, e.g. ``flash`` or ``sage``.
    attention_backend: str | None = None
    steps: int = 30
    guidance_scale: float = 5.0
    #: The output's long side in pixels, before snapping to the model's grid.
    long_side: int = 832
    #: The grid of a checkpoint that differs from its family's (Wan2.2 TI2V-5B: 24 fps, sides
    #: of 32); unset means the family's (``engines/diffusers/grid.py``).
    fps: int | None = None
    side_multiple: int | None = None
    #: The most frames of one pass.
    max_frames: int | None = None


class DiffusersSettings(BaseModel):
    models: dict[str, DiffusersModel] = {}
    #: ``auto``: CUDA when a GPU is visible, else the CPU.
    device: str = "auto"
    #: Load weights from the Hugging Face Hub when a path is not a local directory (off: weights
    #: come only from local directories, and the Hub is never contacted at run time).
    allow_hub: bool = False
    #: LTX-2's joint audio for ``sound: true``. Off by default: the LTX-2 Community License has
    #: a revenue clause; without it, sound comes from the preview engine's procedural synth.
    ltx2_audio: bool = False


class S3Settings(BaseModel):
    """The bucket of ``REELGATE_STORAGE_URL=s3://bucket/prefix`` (install ``reelgate[s3]``).

    Whatever is unset here comes from the standard AWS chain: ``AWS_ACCESS_KEY_ID`` and
    ``AWS_SECRET_ACCESS_KEY``, ``AWS_REGION``, the shared config and credentials files, an
    instance or container role.
    """

    #: Another S3-compatible server (MinIO, Ceph, R2, …), e.g. ``http://minio:9000``; unset:
    #: AWS's own endpoint for the region.
    endpoint_url: str | None = None
    region: str | None = None
    access_key_id: str | None = None
    secret_access_key: SecretStr | None = None
    session_token: SecretStr | None = None
    #: Address the bucket in the path (``endpoint/bucket/key``) rather than in the host name
    #: (``bucket.endpoint/key``), as MinIO and most self-hosted servers need.
    path_style: bool = False
    #: Give clients S3 presigned URLs as upload and result links, instead of reelgate's own
    #: signed ``/files/…`` links (which reelgate serves from the bucket itself).
    presigned_links: bool = False
    #: Files are uploaded in parts of this size (S3's minimum part is 5 MiB); the memory an
    #: upload takes is about this size times ``max_concurrency``.
    part_size_bytes: int = Field(default=8 * MB, ge=5 * MB, le=512 * MB)
    #: Parts of one file in flight at once.
    max_concurrency: int = Field(default=4, ge=1, le=32)
    #: Tries of one request (a lost connection, throttling, a 5xx) before it fails.
    max_attempts: int = Field(default=5, ge=1, le=20)

    @model_validator(mode="after")
    def _both_halves_of_a_key(self) -> S3Settings:
        if (self.access_key_id is None) != (self.secret_access_key is None):
            raise ValueError("set both access_key_id and secret_access_key, or neither")
        return self


class RetentionSettings(BaseModel):
    """How long finished tasks and uploads are kept (RunningHub: about a day); 0 keeps them."""

    #: Seconds a finished task (SUCCESS, FAILED or CANCEL) is kept, counted from its end; then
    #: its result files are deleted and its id answers ``1004`` as an unknown task does.
    results_seconds: int = Field(default=7 * DAY, ge=0)
    #: Seconds an uploaded file is kept, counted from its last upload (a file uploaded again,
    #: by any key, is kept for as long as its newest upload).
    uploads_seconds: int = Field(default=7 * DAY, ge=0)
    #: How often each worker deletes what has expired.
    sweep_seconds: float = Field(default=60.0, gt=0)
    #: Tasks or files deleted per transaction.
    batch_size: int = Field(default=200, ge=1, le=1000)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="REELGATE_", env_nested_delimiter="__", extra="ignore"
    )

    data_dir: Path = Field(default=Path("reelgate-data"))
    database_url: str | None = None
    storage_url: str | None = None
    public_url: str | None = None
    allow_private_networks: bool = False
    engine: str = "preview"
    #: Model paths (``fnmatch`` patterns) to the engine that serves them, e.g.
    #: ``{"kling-video-o3-pro/*": "upstream"}``; the others go to ``engine``.
    routes: dict[str, str] = {}
    #: For the ``upstream`` engine: the RunningHub-compatible base URL and its API keys.
    upstream_url: str | None = None
    upstream_keys: str = ""
    #: Draw the small "preview" mark on preview renders.
    preview_watermark: bool = True
    #: Long side of preview renders in pixels (720p class by default; smaller is faster).
    preview_long_side: int = 1280
    #: ``text`` log lines, or ``json``: one object per line with ``time``, ``level``, ``logger``,
    #: ``message``, the ``taskId`` being processed and any ``exception`` (``reelgate.logs``).
    log_format: Literal["text", "json"] = "text"
    #: Lifetime of signed upload links (RunningHub: one day).
    upload_url_ttl_seconds: int = 86_400
    #: Lifetime of signed result links, counted from the query that returned them.
    result_url_ttl_seconds: int = 86_400
    #: Coins and concurrency of keys created without explicit values.
    default_key_coins: int = 100_000
    default_key_concurrency: int = 1
    #: Most QUEUED tasks one key may have waiting (RunningHub's personal queue: 1000).
    default_key_queue_cap: int = 1000
    #: Requests per second and key to the endpoints that create work: model submits and uploads
    #: (0 = unlimited). Shared by every API process (see ``reelgate.limiting``).
    rate_limit_per_second: float = 20.0
    #: Requests per second and key to every other authenticated endpoint: query, the v1 task
    #: endpoints, account and queue status, price previews (0 = unlimited).
    query_rate_limit_per_second: float = 50.0
    #: Both rates are counted over fixed windows of this many seconds: a burst of up to
    #: rate × window requests is accepted at once, and no window accepts more.
    rate_limit_window_seconds: int = Field(default=10, ge=1)
    #: Where the counters live: unset for reelgate's own database (every process sharing it
    #: shares the limits), or a ``redis://host:port[/db]`` URL (install ``reelgate[redis]``).
    rate_limit_storage: str | None = None
    #: HMAC secret for signed links; generated and kept in the database when unset.
    signing_secret: str | None = None
    #: One log line per HTTP request (uvicorn's access log). Off by default: it costs about a
    #: tenth of a query's CPU time, and the request metrics (``/metrics``) count every request.
    access_log: bool = False

    media: MediaSettings = MediaSettings()
    http: HttpSettings = HttpSettings()
    worker: WorkerSettings = WorkerSettings()
    upstream: UpstreamSettings = UpstreamSettings()
    videos: VideosApiSettings = VideosApiSettings()
    openai_videos: OpenAIVideosSettings = OpenAIVideosSettings()
    webhooks: WebhookSettings = WebhookSettings()
    diffusers: DiffusersSettings = DiffusersSettings()
    s3: S3Settings = S3Settings()
    retention: RetentionSettings = RetentionSettings()

    @field_validator("storage_url")
    @classmethod
    def _storage_url(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        value = value.strip()
        if value.startswith("file://") and value.removeprefix("file://").strip("/"):
            return value
        if value.startswith("s3://") and value.removeprefix("s3://").split("/", 1)[0]:
            return value
        raise ValueError(f"must be file:///path or s3://bucket/prefix; not {value!r}")

    @model_validator(mode="after")
    def _presigned_links_need_s3(self) -> Settings:
        if not self.s3.presigned_links:
            return self
        if self.s3_bucket() is None:
            raise ValueError("REELGATE_S3__PRESIGNED_LINKS needs an s3:// REELGATE_STORAGE_URL")
        longest = max(self.upload_url_ttl_seconds, self.result_url_ttl_seconds)
        if longest > MAX_PRESIGNED_SECONDS:
            raise ValueError(
                f"S3 presigned links last at most {MAX_PRESIGNED_SECONDS} s (7 days); the link "
                f"lifetimes ask for {longest} s"
            )
        return self

    @field_validator("rate_limit_storage")
    @classmethod
    def _redis_url(cls, value: str | None) -> str | None:
        if value is not None and not value.strip():
            return None
        if value is not None and not value.startswith(REDIS_SCHEMES):
            raise ValueError(f"must be a redis:// URL, or unset for the database; not {value!r}")
        return value

    def engine_for(self, model_path: str) -> str:
        """The engine that serves ``model_path``: the first matching route, else ``engine``."""
        for pattern, engine in self.routes.items():
            if fnmatch.fnmatchcase(model_path, pattern):
                return engine
        return self.engine

    def engines_in_use(self) -> list[str]:
        return list(dict.fromkeys([self.engine, *self.routes.values()]))

    def upstream_key_pool(self) -> list[str]:
        """``REELGATE_UPSTREAM_KEYS``, split on commas, blanks dropped, order kept."""
        return list(dict.fromkeys(k.strip() for k in self.upstream_keys.split(",") if k.strip()))

    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'reelgate.db').resolve()}"

    def s3_bucket(self) -> tuple[str, str] | None:
        """(bucket, key prefix) of an ``s3://bucket/prefix`` storage URL; None otherwise."""
        if not self.storage_url or not self.storage_url.startswith("s3://"):
            return None
        bucket, _, prefix = self.storage_url.removeprefix("s3://").partition("/")
        return bucket, prefix.strip("/")

    def resolved_storage_dir(self) -> Path:
        """The directory of local storage (``file://`` or the data dir's ``storage/``)."""
        if self.storage_url and self.storage_url.startswith("file://"):
            return Path(self.storage_url.removeprefix("file://"))
        if self.storage_url:
            raise ValueError(f"{self.storage_url} is not a local directory")
        return (self.data_dir / "storage").resolve()
