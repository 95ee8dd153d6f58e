"""Reading a ``multipart/form-data`` upload as it arrives, part by part.

Starlette's ``request.form()`` spools every file to disk before the route sees a single field,
so an upload's key and size could only be checked once the whole body was stored. Here the body
is fed to python-multipart's streaming parser chunk by chunk, and the route is handed what it
holds, in order: each small field once it is complete, a file's start (its field and file
names), its bytes as they arrive, and its end. The route checks the key at the first of these
that needs it, and stops reading (the answer then closes the connection) as soon as it refuses.

What an upload's form may hold besides the file is small and bounded (``UPLOAD_FORM``):
``MAX_PARTS`` parts, fields of at most ``MAX_FIELD_BYTES``, and at most ``MAX_BEFORE_FILE``
bytes before the first file part. Other forms say their own bounds (``FormLimits``).
"""

from __future__ import annotations

from collections.abc import AsyncGenerator
from dataclasses import dataclass

from python_multipart import MultipartParser
from python_multipart.exceptions import FormParserError
from python_multipart.multipart import parse_options_header
from starlette.requests import Request

from reelgate.core.errors import InvalidParameters

#: Parts of one form (fields and files together).
MAX_PARTS = 16
#: The longest field that is not a file (a key, a file type).
MAX_FIELD_BYTES = 4096
#: The most of a body read before its first file part begins.
MAX_BEFORE_FILE = 64 * 1024


@dataclass(frozen=True)
class FormLimits:
    """What a form may hold besides its files."""

    parts: int = MAX_PARTS
    field_bytes: int = MAX_FIELD_BYTES
    before_file: int = MAX_BEFORE_FILE


UPLOAD_FORM = FormLimits()


@dataclass(frozen=True)
class FormField:
    name: str
    value: str


@dataclass(frozen=True)
class FileStart:
    name: str
    filename: str


@dataclass(frozen=True)
class FileChunk:
    data: bytes


@dataclass(frozen=True)
class FileEnd:
    pass


FormEvent = FormField | FileStart | FileChunk | FileEnd


def _text(raw: bytes) -> str:
    return raw.decode("utf-8", "replace")


class _Parts:
    """python-multipart's callbacks, turned into a list of events taken after each chunk."""

    def __init__(self, limits: FormLimits) -> None:
        self.limits = limits
        self.events: list[FormEvent] = []
        self.parts = 0
        self.file_seen = False
        self._chunks: list[bytes] = []
        self._header_name = b""
        self._header_value = b""
        self._disposition = b""
        self._name = ""
        self._is_file = False
        self._value = bytearray()

    def take(self) -> list[FormEvent]:
        self._flush()
        events, self.events = self.events, []
        return events

    def _flush(self) -> None:
        if self._chunks:
            self.events.append(FileChunk(b"".join(self._chunks)))
            self._chunks = []

    def on_part_begin(self) -> None:
        self.parts += 1
        if self.parts > self.limits.parts:
            raise InvalidParameters(f"a form has at most {self.limits.parts} parts")
        self._disposition = b""
        self._value = bytearray()

    def on_header_field(self, data: bytes, start: int, end: int) -> None:
        self._header_name += data[start:end]

    def on_header_value(self, data: bytes, start: int, end: int) -> None:
        self._header_value += data[start:end]

    def on_header_end(self) -> None:
        if self._header_name.strip().lower() == b"content-disposition":
            self._disposition = self._header_value
        self._header_name = self._header_value = b""

    def on_headers_finished(self) -> None:
        _, options = parse_options_header(self._disposition)
        if b"name" not in options:
            raise InvalidParameters("a form part has no name in its Content-Disposition")
        self._name = _text(options[b"name"])
        self._is_file = b"filename" in options
        if self._is_file:
            self.file_seen = True
            self.events.append(FileStart(self._name, _text(options[b"filename"])))

    def on_part_data(self, data: bytes, start: int, end: int) -> None:
        if self._is_file:
            self._chunks.append(data[start:end])
            return
        if len(self._value) + (end - start) > self.limits.field_bytes:
            raise InvalidParameters(
                f"form field {self._name!r} is longer than {self.limits.field_bytes} bytes"
            )
        self._value += data[start:end]

    def on_part_end(self) -> None:
        if self._is_file:
            self._flush()
            self.events.append(FileEnd())
        else:
            self.events.append(FormField(self._name, _text(bytes(self._value))))


async def form_events(
    request: Request, limits: FormLimits = UPLOAD_FORM
) -> AsyncGenerator[FormEvent]:
    """The events of a multipart body, read as it arrives; none for another content type.

    Raises ``InvalidParameters`` for a body that breaks the multipart format or the bounds
    above, at the chunk that breaks it.
    """
    kind, options = parse_options_header(request.headers.get("content-type"))
    if kind != b"multipart/form-data":
        return
    boundary = options.get(b"boundary")
    if not boundary:
        raise InvalidParameters("the body must be multipart/form-data: no boundary was given")
    parts = _Parts(limits)
    try:
        parser = MultipartParser(
            boundary,
            {
                "on_part_begin": parts.on_part_begin,
                "on_part_data": parts.on_part_data,
                "on_part_end": parts.on_part_end,
                "on_header_field": parts.on_header_field,
                "on_header_value": parts.on_header_value,
                "on_header_end": parts.on_header_end,
                "on_headers_finished": parts.on_headers_finished,
            },
        )
        before_file = 0
        async for chunk in request.stream():
            parser.write(chunk)
            if not parts.file_seen:
                before_file += len(chunk)
                if before_file > limits.before_file:
                    raise InvalidParameters(
                        f"a form carries at most {limits.before_file} bytes before its file"
                    )
            for event in parts.take():
                yield event
        parser.finalize()
    except FormParserError as exc:
        raise InvalidParameters(f"the body must be multipart/form-data: {exc}") from None
    for event in parts.take():
        yield event
