"""An S3-compatible server for the tests: moto's server mode on 127.0.0.1 in a child process.

The child keeps moto's objects (it holds them in memory) and its warnings out of the tests' own
process, whose memory some tests measure. One server per test process; each test gets its own
bucket, and dummy AWS credentials in its environment (the standard chain reads them), with the
shared config files and the instance metadata service out of the way: no request leaves the
loopback.
"""

from __future__ import annotations

import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

import boto3
import pytest
from botocore.config import Config

from reelgate.config import S3Settings

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

_SERVE = """
import sys
from moto.server import ThreadedMotoServer
server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
server.start()
print(server.get_host_and_port()[1], flush=True)
sys.stdin.read()  # until the tests' process closes it, or ends
server.stop()
"""

#: The environment the AWS SDK reads in the tests (and passes to the processes they start).
AWS_ENVIRONMENT = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_CONFIG_FILE": "/nonexistent/aws-config",
    "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent/aws-credentials",
    "AWS_EC2_METADATA_DISABLED": "true",
}


class MotoServer:
    def __init__(self) -> None:
        self._process = subprocess.Popen(
            [sys.executable, "-c", _SERVE],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
        )
        assert self._process.stdout is not None
        line = self._process.stdout.readline()
        if not line.strip().isdigit():
            self.stop()
            raise RuntimeError("moto's server did not start")
        self.url = f"http://127.0.0.1:{int(line)}"

    def stop(self) -> None:
        if self._process.stdin is not None:
            self._process.stdin.close()
        try:
            self._process.wait(10)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait(10)
        if self._process.stdout is not None:
            self._process.stdout.close()


@dataclass(frozen=True)
class Bucket:
    """A fresh bucket on the test server, and what reelgate's settings say to use it."""

    name: str
    prefix: str
    endpoint_url: str
    client: S3Client

    @property
    def storage_url(self) -> str:
        return f"s3://{self.name}/{self.prefix}"

    def settings(self, **overrides: object) -> S3Settings:
        values: dict[str, object] = {"endpoint_url": self.endpoint_url, "path_style": True}
        values.update(overrides)
        return S3Settings.model_validate(values)

    def environment(self, **overrides: str) -> dict[str, str]:
        """The variables that point a reelgate process at this bucket."""
        return {
            "REELGATE_STORAGE_URL": self.storage_url,
            "REELGATE_S3__ENDPOINT_URL": self.endpoint_url,
            "REELGATE_S3__PATH_STYLE": "true",
            **overrides,
        }

    def stored_keys(self) -> list[str]:
        """The storage keys of every object under the prefix."""
        found: list[str] = []
        for page in self.client.get_paginator("list_objects_v2").paginate(
            Bucket=self.name, Prefix=f"{self.prefix}/"
        ):
            found += [
                item["Key"].removeprefix(f"{self.prefix}/") for item in page.get("Contents", [])
            ]
        return sorted(found)

    def read(self, key: str) -> bytes:
        return self.client.get_object(Bucket=self.name, Key=f"{self.prefix}/{key}")["Body"].read()


@pytest.fixture(scope="session")
def moto_server() -> Iterator[MotoServer]:
    server = MotoServer()
    yield server
    server.stop()


@pytest.fixture
def aws_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3"):
        monkeypatch.delenv(name, raising=False)
    for name, value in AWS_ENVIRONMENT.items():
        monkeypatch.setenv(name, value)


@pytest.fixture
def bucket(moto_server: MotoServer, aws_environment: None) -> Iterator[Bucket]:
    client = boto3.client(
        "s3", endpoint_url=moto_server.url, config=Config(s3={"addressing_style": "path"})
    )
    name = f"reelgate-{uuid.uuid4().hex[:12]}"
    client.create_bucket(Bucket=name)
    yield Bucket(name, "media/files", moto_server.url, client)
    client.close()
