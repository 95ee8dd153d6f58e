"""Where a webhook may be delivered: the same address rules as input media."""

from __future__ import annotations

import httpx

from reelgate.config import Settings
from reelgate.core.errors import InvalidUrl
from reelgate.media.netguard import NetworkPolicy, ResolvedHost, resolve_host
from reelgate.wire.requests import WEBHOOK_URL_MAX


def policy_of(settings: Settings) -> NetworkPolicy:
    return NetworkPolicy.build(
        allow_private_networks=settings.allow_private_networks,
        allowed_networks=settings.webhooks.allowed_networks,
    )


def parse_webhook_url(url: str) -> httpx.URL:
    """``url`` as an absolute http(s) URL, or ``InvalidUrl`` (1001) saying what is wrong."""
    if len(url) > WEBHOOK_URL_MAX:
        raise InvalidUrl(f"webhookUrl is longer than {WEBHOOK_URL_MAX} characters")
    try:
        parsed = httpx.URL(url.strip())
    except httpx.InvalidURL as exc:
        raise InvalidUrl(f"webhookUrl {url!r} is not a valid URL ({exc})") from exc
    if parsed.scheme not in ("http", "https") or not parsed.raw_host:
        raise InvalidUrl(f"webhookUrl {url!r} must be an absolute http or https URL")
    if parsed.userinfo:
        raise InvalidUrl("webhookUrl must not carry a user name or password")
    return parsed


def resolve_webhook_host(url: httpx.URL, policy: NetworkPolicy) -> ResolvedHost:
    """The receiver's checked addresses; ``InvalidUrl`` naming ``webhookUrl`` if refused."""
    port = url.port or (443 if url.scheme == "https" else 80)
    try:
        return resolve_host(url.raw_host.decode("ascii"), port, policy)
    except InvalidUrl as exc:
        raise InvalidUrl(f"webhookUrl: {exc.detail}") from None


def checked_webhook_url(url: str, settings: Settings) -> str:
    """A ``webhookUrl`` fit to store: valid, and its host resolves only to permitted addresses.

    Checked at submit (and at ``retryWebhook``) so a refused address is answered at once; the
    dispatcher checks again at every delivery, since DNS answers can change.
    """
    parsed = parse_webhook_url(url)
    resolve_webhook_host(parsed, policy_of(settings))
    return str(parsed)
