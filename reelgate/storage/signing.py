"""Signed, expiring links to stored files: ``{public}/files/{key}?expires=…&signature=…``.

The signature is an HMAC-SHA256 over the key and the expiry with a secret every reelgate process
shares (kept in the database), so any API process can serve a link any other signed, and a
worker recognises its own server's links and reads the file from storage instead of over HTTP.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from urllib.parse import parse_qs, quote, unquote, urlsplit

from reelgate.core.errors import InvalidUrl

FILES_PREFIX = "/files/"


class LinkSigner:
    def __init__(self, secret: str) -> None:
        self._secret = secret.encode()

    def signature(self, key: str, expires: int) -> str:
        message = f"{key}\n{expires}".encode()
        return hmac.new(self._secret, message, hashlib.sha256).hexdigest()[:40]

    def url(self, base_url: str, key: str, expires: int) -> str:
        return (
            f"{base_url.rstrip('/')}{FILES_PREFIX}{quote(key)}"
            f"?expires={expires}&signature={self.signature(key, expires)}"
        )

    def verify(self, key: str, expires: str, signature: str, *, now: float | None = None) -> str:
        """Why the link is not valid, or ``""`` when it is."""
        if not expires.isdigit():
            return "link has no valid expiry"
        if not hmac.compare_digest(self.signature(key, int(expires)), signature):
            return "link signature does not match"
        if int(expires) < (time.time() if now is None else now):
            expired = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(int(expires)))
            return f"link expired at {expired}"
        return ""

    def own_key(self, url: str) -> str | None:
        """The storage key behind one of our links, or None if the URL is not ours.

        A URL under ``/files/`` whose signature is ours but has expired is ours and broken:
        that is an ``InvalidUrl``, not a reason to fetch it over the network. A signature that
        does not match may be another server's link, so it is left to the ordinary fetch.
        """
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or FILES_PREFIX not in parts.path:
            return None
        query = parse_qs(parts.query)
        if "signature" not in query or "expires" not in query:
            return None
        key = unquote(parts.path.split(FILES_PREFIX, 1)[1])
        expires, signature = query["expires"][0], query["signature"][0]
        if not expires.isdigit() or not hmac.compare_digest(
            self.signature(key, int(expires)), signature
        ):
            return None
        problem = self.verify(key, expires, signature)
        if problem:
            raise InvalidUrl(problem)
        return key
