"""Raw S3 load on the same moto (``python -m bench.worker raw``): what the store sustains.

Create-only PUTs (``If-None-Match: *``) of message-sized objects from
``concurrency`` coroutines, with the same client stack and settings as
sessiond's S3 adapter (aiobotocore, no SDK retries, no checksums), so
"requests per second the store sustains" is measured the way sessiond
would see it.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

import aioboto3
from aiobotocore.config import AioConfig

REGION = "us-east-1"


async def task_put_rate(
    endpoint: str, bucket: str, concurrency: int, seconds: float, size: int = 1500
) -> dict[str, Any]:
    """Create-only PUTs from ``concurrency`` coroutines for ``seconds``; PUTs per second."""
    config = AioConfig(
        max_pool_connections=max(concurrency, 10),
        retries={"total_max_attempts": 1, "mode": "standard"},
        s3={"addressing_style": "path"},
        request_checksum_calculation="when_required",
        response_checksum_validation="when_required",
    )
    session = aioboto3.Session()
    body = b"x" * size
    run = uuid.uuid4().hex[:8]
    async with session.client(
        "s3",
        endpoint_url=endpoint,
        region_name=REGION,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        config=config,
    ) as client:
        # Warm the connection pool first.
        await asyncio.gather(
            *(
                client.put_object(Bucket=bucket, Key=f"raw/{run}/warm-{i}", Body=body)
                for i in range(concurrency)
            )
        )
        done = 0
        deadline = time.perf_counter() + seconds

        async def loop(worker: int) -> None:
            nonlocal done
            number = 0
            while time.perf_counter() < deadline:
                await client.put_object(
                    Bucket=bucket,
                    Key=f"raw/{run}/{worker}/{number}",
                    Body=body,
                    IfNoneMatch="*",
                )
                number += 1
                done += 1

        started = time.perf_counter()
        await asyncio.gather(*(loop(i) for i in range(concurrency)))
        elapsed = time.perf_counter() - started
    return {"puts": done, "seconds": elapsed, "rate": done / elapsed}
