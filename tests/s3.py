"""An S3-compatible server on this machine for tests (moto's server mode), and the settings that point
the service at a bucket in it: the same variables a deployment on S3 or MinIO sets."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import s3fs
from moto.server import ThreadedMotoServer

from tests.stack import free_port

KEY, SECRET = "testing", "testing"


@dataclass(frozen=True)
class S3Server:
    endpoint: str

    def options(self) -> dict[str, object]:
        return {"endpoint_url": self.endpoint, "key": KEY, "secret": SECRET}

    def new_bucket(self) -> str:
        name = f"fx-{uuid.uuid4().hex[:12]}"
        s3fs.S3FileSystem(**self.options(), skip_instance_cache=True).mkdir(name)
        return name

    def env(self, bucket: str, prefix: str = "blobs") -> dict[str, str]:
        """The FITEXPLAIN_* variables (and AWS region) of a service storing its bytes in `bucket`."""
        return {
            "FITEXPLAIN_STORAGE_URL": f"s3://{bucket}/{prefix}",
            "FITEXPLAIN_STORAGE_OPTIONS": json.dumps(self.options()),
            "AWS_DEFAULT_REGION": "us-east-1",
        }


@contextmanager
def moto_server() -> Iterator[S3Server]:
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield S3Server(f"http://127.0.0.1:{port}")
    finally:
        server.stop()
