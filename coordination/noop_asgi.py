"""An ASGI application that answers every HTTP request with ``{}`` and does nothing else.

``manage.py bench --http`` serves it with the same server and options as the site, beside it, and times
it in the same rounds as the API: what any Python endpoint costs on that server (the floor under the
API's figures), measured rather than assumed. It imports nothing, so it starts without Django.
"""

HEADERS = [(b"content-type", b"application/json"), (b"content-length", b"2")]


async def application(scope, receive, send):
    if scope["type"] != "http":
        return
    while (await receive()).get("more_body"):
        pass
    await send({"type": "http.response.start", "status": 200, "headers": HEADERS})
    await send({"type": "http.response.body", "body": b"{}"})
