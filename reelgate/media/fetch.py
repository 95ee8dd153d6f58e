"""``MediaFetcher``: turn a task's media URL into a checked local file.

Every source goes through the same steps: get the bytes onto disk under the size cap, sniff
what they really are (never trusting a name, extension or ``Content-Type``), decode, and apply
the contract's limits. The sources are

1. reelgate's own upload and result links, resolved by a callback without any HTTP round trip:
   to the stored file itself, or to a copy it wrote (storage that is not a local directory);
   the callback raises ``InvalidUrl`` for an expired link;
2. ``http(s)://`` URLs, fetched through the network guard (``netguard``, ``download``);
3. ``data:<mime>;base64,<payload>`` URIs.

Every error names the request field (``"firstImageUrl: image is 200x150 px; ..."``) and has
the RunningHub code of its kind: 1001 for a URL that cannot be fetched, 1007 for a file that
breaks a rule, 1008 for one over the size cap, 1013 for bytes that are no image or video.
"""

from __future__ import annotations

import dataclasses
import re
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import httpx

from reelgate.config import MediaSettings
from reelgate.core.errors import FileProcessingFailed, InvalidUrl, ReelgateError
from reelgate.media import probe, rules
from reelgate.media.download import (
    HttpDownloader,
    display_url,
    is_data_uri,
    too_large,
    write_data_uri,
)
from reelgate.media.netguard import NetworkPolicy
from reelgate.media.sniff import Sniffed, sniff

_SNIFF_BYTES = 32


@dataclass(frozen=True)
class FetchedMedia:
    #: The local file: inside ``dest_dir``, or the stored file itself for reelgate's own links
    #: on local storage.
    path: Path
    #: The request field, e.g. ``firstImageUrl`` or ``imageUrls[2]``.
    field: str
    kind: str  # "image" | "video"
    format: str  # "png" | "jpg" | "mp4"
    size: int
    width: int
    height: int
    #: Seconds; videos only.
    duration: float | None
    #: Whether a video has an audio stream; always False for images.
    has_audio: bool


#: Stored files whose checks a fetcher keeps (past it, it starts again empty).
CHECKED_FILES_KEPT = 256


class MediaFetcher:
    """Fetches and checks input media. Thread-safe; one instance per worker is enough."""

    def __init__(
        self,
        settings: MediaSettings,
        *,
        allow_private_networks: bool,
        own_file: Callable[[str, Path], Path | None] = lambda url, dest: None,
        http_client: httpx.Client | None = None,
        allowed_networks: Iterable[str] = (),
    ) -> None:
        """``own_file(url, dest)`` is the file behind one of reelgate's own links (None for
        any other URL): the stored file, or a copy it wrote to ``dest``. ``allowed_networks``
        (CIDR strings) are non-public networks trusted even when ``allow_private_networks`` is
        off."""
        self._settings = settings
        self._own_file = own_file
        policy = NetworkPolicy.build(
            allow_private_networks=allow_private_networks, allowed_networks=allowed_networks
        )
        self._http = HttpDownloader(settings, policy, client=http_client)
        #: What the checks found in stored files read in place (see ``_checked_in_place``).
        self._checked: dict[tuple[object, ...], FetchedMedia] = {}
        self._checked_lock = threading.Lock()

    def close(self) -> None:
        """Close the HTTP client if this fetcher created it (a passed-in client stays open)."""
        self._http.close()

    def __enter__(self) -> MediaFetcher:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def fetch_image(self, url: str, field: str, dest_dir: Path) -> FetchedMedia:
        """Fetch a JPG or PNG for ``field`` and check the image limits."""
        return self._fetch(url, field, dest_dir, self._check_image)

    def fetch_video(self, url: str, field: str, dest_dir: Path) -> FetchedMedia:
        """Fetch an MP4 for ``field`` and check the video limits."""
        return self._fetch(url, field, dest_dir, self._check_video)

    # --- pipeline -------------------------------------------------------------------------------

    def _fetch(
        self,
        url: str,
        field: str,
        dest_dir: Path,
        check: Callable[[Path, Sniffed, int, str], FetchedMedia],
    ) -> FetchedMedia:
        try:
            path, owned = self._obtain(url.strip(), field, dest_dir)
        except ReelgateError as exc:
            raise _with_field(exc, field) from exc
        try:
            stat = path.stat()
            size = stat.st_size
            if size > self._settings.max_input_bytes:
                raise too_large(size, self._settings.max_input_bytes)
            # A stored file of ours, read in place, is checked once (see ``_remember``).
            memo = None if owned else (check.__name__, path, size, stat.st_mtime_ns, stat.st_ino)
            if memo is not None:
                with self._checked_lock:
                    known = self._checked.get(memo)
                if known is not None:
                    return dataclasses.replace(known, field=field)
            with path.open("rb") as f:
                head = f.read(_SNIFF_BYTES)
            sniffed = sniff(head)
            if sniffed is None:
                raise FileProcessingFailed(_unrecognised(head))
            media = check(path, sniffed, size, field)
            if memo is not None:
                self._remember(memo, media)
            if owned:
                # Give the file the extension of what it really is, whatever the URL said.
                final = dest_dir / f"{_safe_name(field)}.{media.format}"
                media = dataclasses.replace(media, path=path.replace(final))
            return media
        except ReelgateError as exc:
            if owned:
                path.unlink(missing_ok=True)
            raise _with_field(exc, field) from exc
        except BaseException:
            if owned:
                path.unlink(missing_ok=True)
            raise

    def _remember(self, memo: tuple[object, ...], media: FetchedMedia) -> None:
        """Keep a stored file's check: uploads are stored once under their content's hash and
        never changed, so tasks that reuse one (a batch over the same image, "run again") do
        not decode it again. Keyed by the file's identity (path, size, mtime, inode) too."""
        with self._checked_lock:
            if len(self._checked) >= CHECKED_FILES_KEPT:
                self._checked.clear()
            self._checked[memo] = media

    def _obtain(self, url: str, field: str, dest_dir: Path) -> tuple[Path, bool]:
        """Put the URL's bytes on disk. Returns the path and whether it is ours to rename or
        delete (False for a stored file behind one of reelgate's own links)."""
        cap = self._settings.max_input_bytes
        if is_data_uri(url):
            part = _part_file(dest_dir, field)
            try:
                write_data_uri(url, part, cap)
            except BaseException:
                part.unlink(missing_ok=True)
                raise
            return part, True
        part = dest_dir / _part_name(field)
        own = self._own_file(url, part)
        if own is not None:
            if not own.is_file():
                raise InvalidUrl(f"the file behind {display_url(url)} no longer exists")
            return own, own == part
        scheme = url.partition(":")[0].lower() if ":" in url else ""
        if scheme not in ("http", "https"):
            shown = f"{scheme}:" if scheme else display_url(url)
            raise InvalidUrl(
                f"unsupported URL {shown}; use an http(s) URL, an uploaded file's link or a "
                f"base64 data: URI"
            )
        part = _part_file(dest_dir, field)
        try:
            self._http.download(url, part)
        except BaseException:
            part.unlink(missing_ok=True)
            raise
        return part, True

    def _check_image(self, path: Path, sniffed: Sniffed, size: int, field: str) -> FetchedMedia:
        rules.check_image_format(sniffed)
        info = probe.inspect_image(
            path, sniffed.ext, max_decoded_bytes=self._settings.max_decoded_image_bytes
        )
        rules.check_image(info, self._settings)
        return FetchedMedia(
            path=path,
            field=field,
            kind="image",
            format=sniffed.ext,
            size=size,
            width=info.width,
            height=info.height,
            duration=None,
            has_audio=False,
        )

    def _check_video(self, path: Path, sniffed: Sniffed, size: int, field: str) -> FetchedMedia:
        rules.check_video_format(sniffed)
        info = probe.inspect_video(path, max_frame_bytes=self._settings.max_decoded_frame_bytes)
        rules.check_video(info, self._settings)
        return FetchedMedia(
            path=path,
            field=field,
            kind="video",
            format=sniffed.ext,
            size=size,
            width=info.width,
            height=info.height,
            duration=info.duration,
            has_audio=info.has_audio,
        )


def _with_field(exc: ReelgateError, field: str) -> ReelgateError:
    """The same error with the field name in front of its detail (added once)."""
    detail = exc.detail or ""
    if detail.startswith(f"{field}: "):
        return exc
    return type(exc)(f"{field}: {detail}" if detail else field, task_id=exc.task_id)


def _safe_name(field: str) -> str:
    """``imageUrls[2]`` -> ``imageUrls-2``: a file name made from a field name."""
    return re.sub(r"[^A-Za-z0-9_-]+", "-", field).strip("-") or "media"


def _part_name(field: str) -> str:
    return f".{_safe_name(field)}.part"


def _part_file(dest_dir: Path, field: str) -> Path:
    dest_dir.mkdir(parents=True, exist_ok=True)
    return dest_dir / _part_name(field)


def _unrecognised(head: bytes) -> str:
    text = head.lstrip().lower()
    if text.startswith((b"<!doctype", b"<html", b"<?xml", b"<")):
        return "the file is not an image or video (it looks like an HTML or XML page)"
    if text.startswith((b"{", b"[")):
        return "the file is not an image or video (it looks like JSON)"
    if not head:
        return "the file is empty"
    return f"the file is not an image or video (it starts with {head[:8].hex(' ')})"
