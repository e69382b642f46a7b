"""A local S3 for tests: moto's server on 127.0.0.1 at a free port, in this process; no network.

with local_s3() as s3:           # AWS_* set so that pyarrow, boto3 and Ray workers started later use it
    s3.create_bucket(Bucket="videos")
"""

from __future__ import annotations

import logging
import os
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager

SETTINGS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_EC2_METADATA_DISABLED": "true",  # no lookups of 169.254.169.254 for an instance role
}


@contextmanager
def local_s3() -> Iterator:
    """A boto3 S3 client of a fresh server, with the environment pointing at it until the end."""
    import boto3
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # a line per request otherwise
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    # moto keeps its buckets in this process, not in the server: start from none, whatever an earlier test left
    urllib.request.urlopen(urllib.request.Request(f"{endpoint}/moto-api/reset", method="POST")).close()
    saved = {name: os.environ.get(name) for name in [*SETTINGS, "AWS_ENDPOINT_URL"]}
    os.environ.update(SETTINGS, AWS_ENDPOINT_URL=endpoint)
    try:
        yield boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1")
    finally:
        server.stop()
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def keys(s3, bucket: str, prefix: str = "") -> list[str]:
    return sorted(o["Key"] for o in s3.list_objects_v2(Bucket=bucket, Prefix=prefix).get("Contents", []))


def text(s3, bucket: str, key: str) -> str:
    return s3.get_object(Bucket=bucket, Key=key)["Body"].read().decode()
