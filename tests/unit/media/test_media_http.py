"""http(s) sources against a real local server: guard, redirects, status codes, caps, timeouts."""

from __future__ import annotations

import shutil
import socket
import ssl
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest

from reelgate.config import MediaSettings
from reelgate.core.errors import FileProcessingFailed, FileTooLarge, InvalidUrl
from reelgate.media import MediaFetcher
from tests.unit.media.media_support import (
    FakeDns,
    LoopbackOnlyTransport,
    MediaServer,
    TlsServer,
    image_bytes,
    self_signed_certificate,
)

MB = 1024 * 1024


@pytest.fixture(scope="module")
def png_url(server: MediaServer) -> str:
    return server.add("ok.png", image_bytes(400, 400), "image/png")


def _sent(client: httpx.Client) -> list[httpx.Request]:
    transport = client._transport
    assert isinstance(transport, LoopbackOnlyTransport)
    return transport.requests


# --- the network guard --------------------------------------------------------------------------


def test_loopback_is_refused_by_default(guarded: MediaFetcher, png_url: str, dest: Path) -> None:
    with pytest.raises(InvalidUrl) as info:
        guarded.fetch_image(png_url, "firstImageUrl", dest)
    assert info.value.code == "1001"
    assert info.value.detail == (
        "firstImageUrl: host 127.0.0.1 resolves to a non-public address; fetching from "
        "loopback, private, link-local or reserved networks is refused unless the server sets "
        "REELGATE_ALLOW_PRIVATE_NETWORKS=true"
    )


def test_loopback_is_fetched_when_allowed(fetcher: MediaFetcher, png_url: str, dest: Path) -> None:
    assert fetcher.fetch_image(png_url, "firstImageUrl", dest).width == 400


def test_localhost_by_name_is_refused(
    guarded: MediaFetcher, server: MediaServer, dest: Path
) -> None:
    with pytest.raises(InvalidUrl, match="host localhost"):
        guarded.fetch_image(f"http://localhost:{server.port}/f/ok.png", "firstImageUrl", dest)


@pytest.mark.parametrize(
    "host",
    [
        "10.0.0.1",
        "172.16.5.4",
        "192.168.0.10",
        "169.254.169.254",
        "100.64.1.1",
        "0.0.0.0",
        "[::1]",
        "[fe80::1]",
        "[fd00::1]",
        "[::ffff:10.0.0.1]",
        "[::ffff:169.254.169.254]",
        "2130706433",
    ],
)
def test_private_literal_addresses_are_refused_before_connecting(
    guarded: MediaFetcher, tripwire_client: httpx.Client, dest: Path, host: str
) -> None:
    with pytest.raises(InvalidUrl, match="resolves to a non-public address"):
        guarded.fetch_image(f"http://{host}/latest/meta-data/", "firstImageUrl", dest)
    assert _sent(tripwire_client) == []


def test_redirect_to_a_private_address_is_refused(
    settings: MediaSettings, server: MediaServer, png_url: str, dest: Path
) -> None:
    # Trust only the test server's address, so that the first hop is allowed and the guard
    # still judges the redirect target.
    client = httpx.Client(transport=LoopbackOnlyTransport(), trust_env=False)
    with MediaFetcher(
        settings,
        allow_private_networks=False,
        http_client=client,
        allowed_networks=["127.0.0.1/32"],
    ) as f:
        assert f.fetch_image(png_url, "firstImageUrl", dest).width == 400
        for target in ("http://169.254.169.254/latest/meta-data/", "http://10.0.0.7:8080/admin"):
            url = f"{server.base}/to?url={quote(target)}"
            with pytest.raises(InvalidUrl, match="resolves to a non-public address"):
                f.fetch_image(url, "firstImageUrl", dest)
    assert {r.url.host for r in _sent(client)} == {"127.0.0.1"}
    client.close()


def test_connection_goes_to_the_checked_address(
    fetcher: MediaFetcher, server: MediaServer, fake_dns: FakeDns, dest: Path
) -> None:
    """The name is resolved once, by the guard; httpx connects to that address and sends the
    name in the Host header, so a second (rebinding) DNS answer is never asked for."""
    fake_dns.names["media.test"] = ["127.0.0.1"]
    server.add("pinned.png", image_bytes(300, 300))
    media = fetcher.fetch_image(f"http://media.test:{server.port}/f/pinned.png", "f", dest)
    assert media.width == 300
    assert ("/f/pinned.png", f"media.test:{server.port}") in server.hosts


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[TlsServer, Path]]:
    if shutil.which("openssl") is None:
        pytest.skip("the openssl command is needed to make a test certificate")
    cert, key = self_signed_certificate(tmp_path_factory.mktemp("tls"), "secure.test")
    srv = TlsServer(cert, key, image_bytes(300, 300))
    yield srv, cert
    srv.close()


def test_https_keeps_the_name_for_sni_and_certificate_checks(
    tls: tuple[TlsServer, Path], fake_dns: FakeDns, dest: Path
) -> None:
    """Connecting to the checked IP must not weaken TLS: the server name sent (SNI) and the
    name the certificate is verified against are still the URL's host."""
    srv, cert = tls
    fake_dns.names["secure.test"] = ["127.0.0.1"]
    fake_dns.names["other.test"] = ["127.0.0.1"]
    trust = ssl.create_default_context(cafile=str(cert))
    client = httpx.Client(transport=LoopbackOnlyTransport(verify=trust), trust_env=False)
    with MediaFetcher(MediaSettings(), allow_private_networks=True, http_client=client) as f:
        media = f.fetch_image(f"https://secure.test:{srv.port}/a.png", "firstImageUrl", dest)
        assert media.width == 300
        assert srv.server_names[-1] == "secure.test"
        # The same address under a name the certificate does not cover must fail verification.
        with pytest.raises(InvalidUrl) as info:
            f.fetch_image(f"https://other.test:{srv.port}/a.png", "firstImageUrl", dest)
        assert "certificate" in str(info.value).lower()
    client.close()


def test_unreachable_addresses_are_tried_in_turn(
    server: MediaServer, fake_dns: FakeDns, dest: Path
) -> None:
    fake_dns.names["dual.test"] = ["2001:db8::1", "127.0.0.1"]
    server.add("dual.png", image_bytes(300, 300))
    transport = LoopbackOnlyTransport(unreachable=frozenset({"2001:db8::1"}))
    client = httpx.Client(transport=transport, trust_env=False)
    with MediaFetcher(MediaSettings(), allow_private_networks=True, http_client=client) as f:
        media = f.fetch_image(f"http://dual.test:{server.port}/f/dual.png", "f", dest)
    client.close()
    assert media.width == 300
    assert [r.url.host for r in transport.requests] == ["2001:db8::1", "127.0.0.1"]
    assert all(r.headers["Host"] == f"dual.test:{server.port}" for r in transport.requests)


def test_unresolvable_host(fetcher: MediaFetcher, fake_dns: FakeDns, dest: Path) -> None:
    with pytest.raises(InvalidUrl) as info:
        fetcher.fetch_image("https://no-such-host.test/a.png", "firstImageUrl", dest)
    assert info.value.detail is not None
    assert info.value.detail.startswith("firstImageUrl: cannot resolve host 'no-such-host.test'")


def test_connection_refused(fetcher: MediaFetcher, dest: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again: nothing listens there
    with pytest.raises(InvalidUrl) as info:
        fetcher.fetch_image(f"http://127.0.0.1:{port}/a.png", "firstImageUrl", dest)
    assert f"could not connect to 127.0.0.1 port {port}" in str(info.value)


# --- HTTP answers -------------------------------------------------------------------------------


@pytest.mark.parametrize("status", [404, 403, 500])
def test_error_status(fetcher: MediaFetcher, server: MediaServer, dest: Path, status: int) -> None:
    with pytest.raises(InvalidUrl) as info:
        fetcher.fetch_image(f"{server.base}/status/{status}?sig=secret", "firstImageUrl", dest)
    assert info.value.detail == (
        f"firstImageUrl: HTTP {status} from {server.base}/status/{status}?…"
    )
    assert "secret" not in str(info.value)
    assert not any(dest.iterdir())


def test_redirect_chain_within_the_limit(
    fetcher: MediaFetcher, server: MediaServer, png_url: str, dest: Path
) -> None:
    media = fetcher.fetch_image(f"{server.base}/redirect/5/ok.png", "firstImageUrl", dest)
    assert media.width == 400


def test_too_many_redirects(fetcher: MediaFetcher, server: MediaServer, dest: Path) -> None:
    url = f"{server.base}/redirect/6/ok.png"
    with pytest.raises(InvalidUrl) as info:
        fetcher.fetch_image(url, "firstImageUrl", dest)
    assert info.value.detail == (
        f"firstImageUrl: too many redirects (more than 5) starting at {url}"
    )


@pytest.mark.parametrize("target", ["file:///etc/passwd", "ftp://example.com/a.png"])
def test_redirect_to_another_scheme(
    fetcher: MediaFetcher, server: MediaServer, dest: Path, target: str
) -> None:
    with pytest.raises(InvalidUrl) as info:
        fetcher.fetch_image(f"{server.base}/to?url={quote(target)}", "firstImageUrl", dest)
    detail = info.value.detail or ""
    assert detail.startswith(f"firstImageUrl: redirect target {target[:4]}")
    assert detail.endswith(" must use http or https")


# --- size cap and timeouts ----------------------------------------------------------------------


def test_content_length_over_the_cap_is_refused_up_front(
    fetcher: MediaFetcher, server: MediaServer, dest: Path
) -> None:
    started = time.monotonic()
    with pytest.raises(FileTooLarge) as info:
        fetcher.fetch_image(f"{server.base}/huge", "firstImageUrl", dest)
    assert info.value.code == "1008"
    assert info.value.detail == (
        "firstImageUrl: file is 953674.3 MB; at most 50.0 MB (52428800 bytes) are accepted"
    )
    assert time.monotonic() - started < 1
    assert not any(dest.iterdir())


def test_running_count_stops_a_body_without_length(
    server: MediaServer, loopback_client: httpx.Client, dest: Path
) -> None:
    settings = MediaSettings(max_input_bytes=MB)
    with MediaFetcher(settings, allow_private_networks=True, http_client=loopback_client) as f:
        with pytest.raises(FileTooLarge) as info:
            f.fetch_image(f"{server.base}/unsized/{4 * MB}", "firstImageUrl", dest)
        assert info.value.detail == (
            "firstImageUrl: file is larger than the limit; at most 1.0 MB (1048576 bytes) "
            "are accepted"
        )
    assert not any(dest.iterdir())


def test_server_that_does_not_answer_times_out(
    fetcher: MediaFetcher, server: MediaServer, dest: Path
) -> None:
    started = time.monotonic()
    with pytest.raises(InvalidUrl) as info:
        fetcher.fetch_image(f"{server.base}/slow", "firstImageUrl", dest)
    assert info.value.detail == f"firstImageUrl: fetching {server.base}/slow timed out after 1 s"
    assert time.monotonic() - started < 2.5


def test_trickling_server_hits_the_overall_deadline(
    fetcher: MediaFetcher, server: MediaServer, dest: Path
) -> None:
    started = time.monotonic()
    with pytest.raises(InvalidUrl, match="timed out after 1 s"):
        fetcher.fetch_image(f"{server.base}/trickle", "firstImageUrl", dest)
    assert time.monotonic() - started < 2.5


@pytest.mark.parametrize("route", ["/forever", "/trickle-headers"])
def test_a_server_that_never_finishes_is_cut_off_at_the_deadline(
    fetcher: MediaFetcher, server: MediaServer, dest: Path, route: str
) -> None:
    """A byte every 50 ms keeps every per-read timeout happy for ever, in the body or in the
    headers (where no check between reads could run): only the deadline on the whole fetch
    ends it."""
    started = time.monotonic()
    with pytest.raises(InvalidUrl) as info:
        fetcher.fetch_image(f"{server.base}{route}", "firstImageUrl", dest)
    assert info.value.detail == (
        f"firstImageUrl: fetching {server.base}{route} timed out after 1 s"
    )
    assert time.monotonic() - started < 10  # ends: without the deadline it never would
    assert not any(dest.iterdir())


def test_a_body_shorter_than_its_content_length_is_refused(
    fetcher: MediaFetcher, server: MediaServer, png_url: str, dest: Path
) -> None:
    with pytest.raises(InvalidUrl) as info:
        fetcher.fetch_image(f"{server.base}/lie/short/ok.png", "firstImageUrl", dest)
    assert info.value.code == "1001"
    assert f"download from {server.base}/lie/short/ok.png broke off" in str(info.value)
    assert not any(dest.iterdir())


def test_a_body_longer_than_its_content_length_is_cut_where_it_said(
    fetcher: MediaFetcher, server: MediaServer, png_url: str, dest: Path
) -> None:
    """The declared length frames the body: what follows it is never read, so the file is the
    first half of the PNG, which does not decode."""
    with pytest.raises(FileProcessingFailed) as info:
        fetcher.fetch_image(f"{server.base}/lie/long/ok.png", "firstImageUrl", dest)
    assert info.value.code == "1013"
    assert "png image could not be decoded" in str(info.value)
    assert not any(dest.iterdir())


@pytest.mark.parametrize("inject", [False, True])
def test_cookies_are_never_sent(
    server: MediaServer, png_url: str, loopback_client: httpx.Client, dest: Path, inject: bool
) -> None:
    """A cookie one caller's host sets must not reach the next fetch (URLs share IP origins)."""
    client = loopback_client if inject else None
    with MediaFetcher(MediaSettings(), allow_private_networks=True, http_client=client) as f:
        f.fetch_image(f"{png_url}?cookie", "firstImageUrl", dest)
        f.fetch_image(png_url, "firstImageUrl", dest)
    assert server.cookies == []


def test_own_client_is_used_when_none_is_given(
    server: MediaServer, png_url: str, dest: Path
) -> None:
    with MediaFetcher(MediaSettings(), allow_private_networks=True) as f:
        assert f.fetch_image(png_url, "firstImageUrl", dest).format == "png"
