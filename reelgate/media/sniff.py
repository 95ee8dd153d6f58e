"""Real format sniffing: what a file is, by its first bytes, whatever its name says."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Sniffed:
    #: ``image``, ``video``, ``audio`` or ``zip`` (RunningHub's upload ``data.type`` values).
    kind: str
    #: Canonical extension: ``png``, ``jpg``, ``webp``, ``gif``, ``bmp``, ``tiff``, ``heic``,
    #: ``avif``, ``mp4``, ``mov``, ``mkv``, ``avi``, ``m4a``, ``mp3``, ``wav``, ``flac``, ``zip``.
    #: Recognising formats that no endpoint accepts lets callers say "got gif" instead of
    #: "unrecognisable file"; callers check ``ext`` against their own allow-list.
    ext: str


#: Extensions the upload endpoint stores (contract §6.1: images JPG/PNG/WEBP, videos
#: MP4/AVI/MOV/MKV, audio MP3/WAV/FLAC and M4A, ZIP). ``sniff`` recognises more than this.
UPLOAD_FORMATS = frozenset(
    {"png", "jpg", "webp", "mp4", "mov", "mkv", "avi", "mp3", "wav", "flac", "m4a", "zip"}
)

#: ISO base media brands that are still images, not videos (HEIF/AVIF share MP4's ``ftyp`` box).
_IMAGE_BRANDS = {
    b"heic": "heic",
    b"heix": "heic",
    b"heim": "heic",
    b"heis": "heic",
    b"mif1": "heic",
    b"msf1": "heic",
    b"avif": "avif",
    b"avis": "avif",
}

#: Top-level atoms that open old QuickTime files written without an ``ftyp`` box.
_QUICKTIME_ATOMS = (b"moov", b"mdat", b"wide", b"free", b"skip", b"pnot")


def sniff(head: bytes) -> Sniffed | None:
    """Identify a file from its first bytes (32 are enough); None when unknown."""
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return Sniffed("image", "png")
    if head.startswith(b"\xff\xd8\xff"):
        return Sniffed("image", "jpg")
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return Sniffed("image", "webp")
    if head.startswith((b"GIF87a", b"GIF89a")):
        return Sniffed("image", "gif")
    if head.startswith((b"II*\x00", b"MM\x00*")):
        return Sniffed("image", "tiff")
    # "BM" alone is too weak; the 14-byte BMP header's reserved fields are zero.
    if head.startswith(b"BM") and head[6:10] == b"\x00\x00\x00\x00":
        return Sniffed("image", "bmp")
    if head[:4] == b"RIFF" and head[8:12] == b"WAVE":
        return Sniffed("audio", "wav")
    if head[:4] == b"RIFF" and head[8:12] == b"AVI ":
        return Sniffed("video", "avi")
    if head[4:8] == b"ftyp":
        brand = head[8:12]
        if brand in _IMAGE_BRANDS:
            return Sniffed("image", _IMAGE_BRANDS[brand])
        if brand == b"qt  ":
            return Sniffed("video", "mov")
        if brand in (b"M4A ", b"M4B "):
            return Sniffed("audio", "m4a")
        return Sniffed("video", "mp4")
    if head[4:8] in _QUICKTIME_ATOMS:
        return Sniffed("video", "mov")
    if head.startswith(b"\x1a\x45\xdf\xa3"):
        return Sniffed("video", "mkv")
    if head.startswith(b"fLaC"):
        return Sniffed("audio", "flac")
    if head.startswith(b"ID3") or (len(head) > 1 and head[0] == 0xFF and head[1] & 0xE0 == 0xE0):
        return Sniffed("audio", "mp3")
    if head.startswith(b"PK\x03\x04"):
        return Sniffed("zip", "zip")
    return None
