"""The keys' webhook signing secrets, in the Standard Webhooks form ``whsec_<base64>``."""

from __future__ import annotations

import base64

from reelgate.wire.webhooks import SECRET_PREFIX


def public_secret(stored: str) -> str:
    """The secret as its owner sees it: ``whsec_`` and the base64 of the key bytes.

    Keys store the 32 random bytes as hex (64 characters).
    """
    if stored.startswith(SECRET_PREFIX):
        return stored
    return SECRET_PREFIX + base64.b64encode(bytes.fromhex(stored)).decode("ascii")
