"""Each operation written once, run by the sync memory (redis-py) and by its asyncio twin (``aio.py``).

An operation is a generator: it validates its input, builds the script's arguments from the keys
module, ``yield``s what it needs from Redis and turns the reply into the library's value. The
generator does no I/O itself; a driver performs each request and sends the reply back in:

- ``yield Run(script, team, keys, args)``: one EVALSHA (the memory's ``run``: script loading, team
  index, error translation);
- ``yield Read("hgetall", key)``: one read command (or one command outside team data, such as a
  cache entry, which needs no event);
- ``yield Pipe((("hgetall", (key,), {}), ...))``: several reads in one round trip (no transaction).

``@op`` turns such a generator into the sync method (driven by ``self.memory``, or ``self`` for the
memory's own methods); :func:`async_twin` builds the coroutine version of the same generator for the
asyncio classes. So the two paths share every rule, argument and reply parser: only the I/O differs.
"""

from __future__ import annotations

from functools import wraps
from inspect import isgeneratorfunction
from typing import NamedTuple


class Run(NamedTuple):
    script: str
    team: object
    keys: tuple = ()
    args: tuple = ()


class Read(NamedTuple):
    command: str
    args: tuple = ()
    kwargs: dict = {}


def read(command: str, *args, **kwargs) -> Read:
    return Read(command, args, kwargs)


class Pipe(NamedTuple):
    calls: tuple  # of (command, args, kwargs)


def perform(memory, request):
    """Do one request on a sync memory."""
    if type(request) is Run:
        return memory.run(request.script, request.team, request.keys, request.args)
    client = memory.client
    if type(request) is Read:
        return memory.read(getattr(client, request.command), *request.args, **request.kwargs)
    pipe = client.pipeline(transaction=False)
    for command, args, kwargs in request.calls:
        getattr(pipe, command)(*args, **kwargs)
    return memory.read(pipe.execute)


def drive(gen, memory):
    """Run an operation's generator to its end on a sync memory; its return value is the result."""
    try:
        request = next(gen)
        while True:
            try:
                reply = perform(memory, request)
            except Exception as exc:  # the operation may handle it; if not, it comes back out
                request = gen.throw(exc)
            else:
                request = gen.send(reply)
    except StopIteration as stop:
        return stop.value


async def adrive(gen, memory):
    """The same, on an asyncio memory (``memory.perform`` is a coroutine)."""
    try:
        request = next(gen)
        while True:
            try:
                reply = await memory.perform(request)
            except Exception as exc:
                request = gen.throw(exc)
            else:
                request = gen.send(reply)
    except StopIteration as stop:
        return stop.value


def op(gen_fn):
    """A method from an operation generator: drives it on ``self.memory`` (``self`` when the object
    is the memory). The generator stays reachable as ``method.op`` for :func:`async_twin`."""
    if not isgeneratorfunction(gen_fn):
        raise TypeError(f"@op needs a generator function, {gen_fn.__qualname__} is not one")

    @wraps(gen_fn)
    def method(self, *args, **kwargs):
        return drive(gen_fn(self, *args, **kwargs), getattr(self, "memory", self))

    method.op = gen_fn
    return method


def op_function(gen_fn):
    """A module-level function ``f(memory, ...)`` from an operation generator."""
    if not isgeneratorfunction(gen_fn):
        raise TypeError(f"@op_function needs a generator function, {gen_fn.__qualname__} is not one")

    @wraps(gen_fn)
    def function(memory, *args, **kwargs):
        return drive(gen_fn(memory, *args, **kwargs), memory)

    function.op = gen_fn
    return function


def async_twin(cls, base, names=None):
    """Give ``cls`` a coroutine method for every ``@op`` method of ``base`` (or those in ``names``)."""
    for name, attr in list(vars(base).items()):
        gen_fn = getattr(attr, "op", None)
        if gen_fn is None or (names is not None and name not in names) or name in vars(cls):
            continue
        setattr(cls, name, _coroutine_method(gen_fn))
    return cls


def _coroutine_method(gen_fn):
    @wraps(gen_fn)
    async def method(self, *args, **kwargs):
        return await adrive(gen_fn(self, *args, **kwargs), getattr(self, "memory", self))

    return method


def async_function(fn):
    """The coroutine version of an :func:`op_function`: ``await f(async_memory, ...)``."""
    gen_fn = fn.op

    @wraps(gen_fn)
    async def function(memory, *args, **kwargs):
        return await adrive(gen_fn(memory, *args, **kwargs), memory)

    return function
