"""The metrics probe: the chapter's three round trips, measured live in a thread of the server process.

The probe runs (``manage.py serve`` starts it) every ``PROBE_INTERVAL_SECONDS``. It works in a team of its
own (``probe``) under a key prefix of its own (``<prefix>-probe``), with small retention limits: its writes
never show up in the site's team list, event streams or counters, and its keys stay bounded. Samples are
kept in process memory, in capped rings: each server process reports what it measured itself. After each
round it tells the live metrics pages (``METRICS_GROUP``).

What the figures mean and how the page shows them: ``coordination.metrics``; the ``/metrics`` text:
``coordination.metrics_exposition``.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
import uuid
from collections import deque
from dataclasses import replace
from time import perf_counter

from asgiref.sync import async_to_sync
from channels.layers import InMemoryChannelLayer, get_channel_layer

from empathy_os import (
    AccessTier,
    AgentCoordinator,
    AgentTask,
    EmpathyError,
    EmpathyOS,
    RedisShortTermMemory,
    StagedPattern,
)

from .memory import get_memory

log = logging.getLogger("coordination.metrics")

#: Seconds between two probe rounds.
PROBE_INTERVAL_SECONDS = 5.0
#: Samples kept per series (10 minutes at the default interval).
WINDOW = 120
#: The probe's team, under the probe's own key prefix.
PROBE_TEAM = "probe"
PROBE_AGENT = "probe_agent"
#: The channel-layer group of the live metrics pages, told after each probe round.
METRICS_GROUP = "metrics"
#: What the probe thread sends that group (handled by ``MetricsConsumer``).
ROUND_NOTICE = {"type": "metrics.probed"}
#: The latencies the probe measures (keys of ``coordination.metrics.LATENCIES``).
PROBED = ("task_distribution", "signal_round_trip", "pattern_staging")


class Series:
    """A capped ring of ``(time, value)`` samples, with running count and sum (thread-safe)."""

    def __init__(self, capacity: int = WINDOW):
        self._ring: deque = deque(maxlen=capacity)
        self._lock = threading.Lock()
        self.count = 0
        self.total = 0.0

    def add(self, value: float, at: float | None = None) -> None:
        with self._lock:
            self._ring.append((time.time() if at is None else at, value))
            self.count += 1
            self.total += value

    def samples(self) -> list[tuple[float, float]]:
        with self._lock:
            return list(self._ring)


def probe_memory_for(memory: RedisShortTermMemory) -> RedisShortTermMemory:
    """A memory over the same connection, under the probe's own prefix and small retention limits."""
    config = replace(memory.config, key_prefix=f"{memory.config.key_prefix}-probe",
                     finished_task_retention_count=32, signal_stream_maxlen=64, event_stream_maxlen=64)
    return RedisShortTermMemory(client=memory.client, config=config)


class RoundNotifier:
    """Tells the live metrics pages (``METRICS_GROUP``) that a probe round ended, from the probe's thread.

    Why not only ``async_to_sync(layer.group_send)``: that runs the send on an event loop of its
    own, which is right for channels-redis but not for the in-memory layer of mock mode, whose
    queues belong to the server's loop and are not thread-safe. So the first metrics page to
    connect ``attach``es the server's loop, and the notice is sent on that loop; without one (no
    page connected in this process) it falls back to ``async_to_sync`` for channels-redis (pages of
    other processes listen) and sends nothing on the in-memory layer (nobody can listen).
    """

    #: Seconds the probe thread waits for the send at most (a stuck loop must not stop the probe).
    TIMEOUT = 5.0

    def __init__(self):
        self.loop: asyncio.AbstractEventLoop | None = None
        self._tasks: set = set()  # sends scheduled on a running loop, kept until done

    def attach(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop

    def __call__(self) -> None:
        layer = get_channel_layer()
        if layer is None:
            return
        target = self.loop if self.loop is not None and self.loop.is_running() else None
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if target is None and running is None and isinstance(layer, InMemoryChannelLayer):
            return  # no page of this process has connected, and no other process can listen
        if running is not None and target in (None, running):  # on a loop already: do not block it
            task = running.create_task(layer.group_send(METRICS_GROUP, dict(ROUND_NOTICE)))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        elif target is not None:
            asyncio.run_coroutine_threadsafe(layer.group_send(METRICS_GROUP, dict(ROUND_NOTICE)),
                                             target).result(self.TIMEOUT)
        else:
            async_to_sync(layer.group_send)(METRICS_GROUP, dict(ROUND_NOTICE))


#: Tells this process's metrics pages about each probe round.
NOTIFY = RoundNotifier()


class Probe:
    """Measures the chapter's three round trips every ``interval`` seconds, in a thread.

    Each round queues, claims and completes one task, broadcasts and reads back one signal, and
    re-stages the same pattern id (an owner's overwrite), so the probe's data never grows.
    """

    def __init__(self, memory_getter=get_memory, interval: float = PROBE_INTERVAL_SECONDS, capacity: int = WINDOW,
                 notify=None):
        self.memory_getter = memory_getter
        self.interval = interval
        self.notify = notify or NOTIFY
        self.series = {key: Series(capacity) for key in PROBED}
        self.keys = Series(capacity)
        self.runs = 0
        self.errors = 0
        self.last_error: str | None = None
        self.last_run: float | None = None
        self._source = None
        self._probe_memory = None
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def _memory(self) -> tuple[RedisShortTermMemory, RedisShortTermMemory]:
        memory = self.memory_getter()
        if memory is not self._source:  # the site's memory changed (tests): follow it
            self._source, self._probe_memory = memory, probe_memory_for(memory)
        return memory, self._probe_memory

    def process_one(self) -> dict:
        """One round: returns the latencies measured (seconds) and the key count. Raises
        :class:`MemoryUnavailableError` when Redis does not answer (the round is counted as an error)."""
        self.runs += 1
        self.last_run = time.time()
        try:
            measured = self._measure()
        except Exception as exc:
            self.errors += 1
            self.last_error = f"{type(exc).__name__}: {exc}"
            raise
        self.last_error = None
        now = time.time()
        for key in PROBED:
            self.series[key].add(measured[key], now)
        self.keys.add(measured["keys"], now)
        return measured

    def _measure(self) -> dict:
        memory, pm = self._memory()
        coordinator = AgentCoordinator(pm, PROBE_TEAM)
        agent = EmpathyOS(PROBE_AGENT, pm, AccessTier.CONTRIBUTOR, team_id=PROBE_TEAM)
        task = AgentTask(f"probe_{uuid.uuid4().hex[:12]}", "probe", "metrics probe", priority=5)

        start = perf_counter()
        coordinator.add_task(task)
        distribution = perf_counter() - start
        coordinator.claim_task(PROBE_AGENT, "probe")  # keep the probe's queue empty
        coordinator.complete_task(task.task_id, {"probe": True})

        start = perf_counter()
        coordinator.broadcast("ping", {"timestamp": time.time()})
        coordinator.receive_signals("ping")
        signal = perf_counter() - start

        pattern = StagedPattern("probe_pattern", PROBE_AGENT, "probe", "Probe pattern",
                                description="Staged by the metrics probe every round", confidence=0.5)
        start = perf_counter()
        agent.stage_pattern(pattern)
        staging = perf_counter() - start

        keys = memory.get_stats()["keys"]
        return {"task_distribution": distribution, "signal_round_trip": signal, "pattern_staging": staging,
                "keys": keys}

    def round(self) -> None:
        """One round as the thread runs it: measure, then tell the live pages (a failed round too:
        the pages show the failures). Never raises: an outage is counted, not fatal."""
        try:
            self.process_one()
        except EmpathyError:
            pass  # recorded in errors / last_error; the page shows it
        except Exception:
            log.exception("metrics probe failed")
        try:
            self.notify()
        except Exception:  # the pages miss one round; the next one brings them up to date
            log.warning("could not tell the metrics pages about a probe round", exc_info=True)

    def run(self, stop: threading.Event) -> None:
        """Probe every ``interval`` seconds until ``stop`` is set."""
        while not stop.is_set():
            self.round()
            stop.wait(self.interval)

    def start(self, stop: threading.Event) -> threading.Thread:
        """Start the probe thread (once per process) and return it."""
        with self._lock:
            if not self.running:
                self._thread = threading.Thread(target=self.run, args=(stop,), name="empathy-metrics-probe",
                                                daemon=True)
                self._thread.start()
            return self._thread


#: This process's probe.
PROBE = Probe()
