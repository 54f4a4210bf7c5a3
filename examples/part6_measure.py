"""Part 6, Key Metrics: measure task distribution latency and signal round trip.

Run: EMPATHY_REDIS_MOCK=1 python part6_measure.py  (mock mode), or REDIS_URL=redis://... python part6_measure.py
"""
import sys
from pathlib import Path

sys.path.insert(1, str(Path(__file__).resolve().parent.parent))  # empathy_os from this checkout, uninstalled

# Continue the chapter where the earlier step left off (importing it runs it).
from step04_set_up_team import AgentTask, coordinator, memory  # noqa: E402

# --- chapter block begins ---
def measure_coordination_performance(memory, coordinator, num_tasks=10):
    """Benchmark coordination latency and throughput."""
    import time

    # 1. Task distribution latency
    start = time.time()
    for i in range(num_tasks):
        coordinator.add_task(AgentTask(
            task_id=f"bench_{i}",
            task_type="benchmark",
            description="Benchmark task",
            priority=5
        ))
    distribution_time = (time.time() - start) * 1000

    # 2. Signal round-trip time
    start = time.time()
    coordinator.broadcast("ping", {"timestamp": time.time()})
    signals = memory.receive_signals(coordinator._credentials, signal_type="ping")
    signal_rtt = (time.time() - start) * 1000

    # 3. Memory stats
    stats = memory.get_stats()

    return {
        "distribution_latency_ms": distribution_time / num_tasks,
        "signal_rtt_ms": signal_rtt,
        "redis_mode": stats["mode"],
        "total_keys": stats["keys"],
        "memory_used": stats.get("memory_used", "N/A")
    }

# Run benchmark
metrics = measure_coordination_performance(memory, coordinator)
print(f"Task distribution: {metrics['distribution_latency_ms']:.1f}ms per task")
print(f"Signal round-trip: {metrics['signal_rtt_ms']:.1f}ms")
print(f"Mode: {metrics['redis_mode']}, Keys: {metrics['total_keys']}")
# --- chapter block ends ---
