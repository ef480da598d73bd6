"""Reading request bodies nobody has authenticated yet: bounded in size and in time.

A webhook delivery or a sign-in form arrives before anything says who sent it,
so its body is read in chunks, refused as soon as it passes its size limit, and
given up when it does not arrive within a timeout (a client sending a byte a
minute would otherwise hold a connection forever). A client that leaves
mid-body is reported as such, not as an error of appflow.
"""

from __future__ import annotations

import asyncio

from fastapi import Request
from starlette.requests import ClientDisconnect

DEFAULT_BODY_TIMEOUT_SECONDS = 10.0
"""A push payload is small: a client still sending after this long is holding a connection."""


class BodyTooLargeError(Exception):
    """The request body is over the size limit (answered 413)."""


class BodyTimeoutError(Exception):
    """The request body did not arrive within the read timeout (answered 408)."""


class ClientGoneError(Exception):
    """The client disconnected before sending its whole body (nobody to answer)."""


async def read_body(request: Request, limit: int, *, timeout: float) -> bytes:
    """The request body, refused as soon as it passes LIMIT bytes or takes over TIMEOUT seconds."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise BodyTooLargeError
    chunks: list[bytes] = []
    size = 0
    try:
        async with asyncio.timeout(timeout):
            async for chunk in request.stream():
                size += len(chunk)
                if size > limit:
                    raise BodyTooLargeError
                chunks.append(chunk)
    except TimeoutError:
        raise BodyTimeoutError from None
    except ClientDisconnect:
        raise ClientGoneError from None
    return b"".join(chunks)
