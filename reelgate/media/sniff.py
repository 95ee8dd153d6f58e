"""Real format sniffing: what a file is, by its first bytes, whatever its name says."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Sniffed:
    #: ``image``, ``video``, ``audio`` or ``zip`` (RunningHub's upload ``data.type`` values).
    kind: str
    #: Canonical extension: ``png``, ``jpg``, ``webp``, ``mp4``, ``mov``, ``mkv``, ``avi``,
    #: ``mp3``, ``wav``, ``flac``, ``zip``.
    ext: str


def sniff(head: bytes) -> Sniffed | None:
    """Identify a file from its first bytes (32 are enough); None when unknown."""
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return Sniffed("image", "png")
    if head.startswith(b"\xff\xd8\xff"):
        return Sniffed("image", "jpg")
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return Sniffed("image", "webp")
    if head[:4] == b"RIFF" and head[8:12] == b"WAVE":
        return Sniffed("audio", "wav")
    if head[:4] == b"RIFF" and head[8:12] == b"AVI ":
        return Sniffed("video", "avi")
    if head[4:8] == b"ftyp":
        brand = head[8:12]
        if brand == b"qt  ":
            return Sniffed("video", "mov")
        if brand in (b"M4A ", b"M4B "):
            return Sniffed("audio", "m4a")
        return Sniffed("video", "mp4")
    if head.startswith(b"\x1a\x45\xdf\xa3"):
        return Sniffed("video", "mkv")
    if head.startswith(b"fLaC"):
        return Sniffed("audio", "flac")
    if head.startswith(b"ID3") or (len(head) > 1 and head[0] == 0xFF and head[1] & 0xE0 == 0xE0):
        return Sniffed("audio", "mp3")
    if head.startswith(b"PK\x03\x04"):
        return Sniffed("zip", "zip")
    return None
