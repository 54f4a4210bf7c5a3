"""An ASGI application that does (almost) nothing: the floor under the API's figures, measured.

``manage.py bench --http`` serves it with the same server and options as the site, beside it, and times
it in the same rounds as the API:

- any path but ``/redis``: answers ``{}`` at once (what any Python endpoint costs on that server);
- ``/redis``: first sends one ``PING`` to ``REDIS_URL`` the way the API's scripts go
  (``empathy_os.aio.Lane``), then answers ``{}``: the least an endpoint that needs Redis can cost.

It imports neither Django nor the site, so it starts without them.
"""

import os

HEADERS = [(b"content-type", b"application/json"), (b"content-length", b"2")]
_lane = None  # made on the first /redis request, in the server's event loop


async def _ping() -> None:
    global _lane
    if _lane is None:
        import redis.asyncio

        from empathy_os.aio import Lane

        _lane = Lane(redis.asyncio.ConnectionPool.from_url(os.environ["REDIS_URL"], decode_responses=True), 64, 5)
    await _lane.execute("PING")


async def application(scope, receive, send):
    if scope["type"] != "http":
        return
    while (await receive()).get("more_body"):
        pass
    if scope["path"] == "/redis":
        await _ping()
    await send({"type": "http.response.start", "status": 200, "headers": HEADERS})
    await send({"type": "http.response.body", "body": b"{}"})
