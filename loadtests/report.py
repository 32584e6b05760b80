"""The load harness's report: the table of every run, then the gateway against the floor
(and a baseline checkout) as ratios measured in the same run, with PASS/MISS against the goals."""

from __future__ import annotations

from loadtests.wrk import MODES, Result

# Goals (issue 16): ratios to the floor measured in the same run, so they hold on any machine.
CPU_RATIO_GOAL = 2.0  # gateway CPU per call <= 2x the floor's, JSON and stream
ADDED_P50_GOAL_MS = 0.3  # gateway added p50, 1 client, <= the floor's + 0.3 ms
RSS_GOAL_MIB = 80  # per gateway worker


def report(results: list[Result], concurrency: int, gateway_rss_mib: float) -> bool:
    """The table, then the gateway against the floor and the goals. True when all PASS."""
    direct = {(r.mode, r.conns): r.p50_ms for r in results if r.target == "mock"}
    print(f"\n{'target':8} {'mode':6} {'conns':>5} {'RPS':>8} {'p50 ms':>8} {'p99 ms':>8} "
          f"{'added p50':>10} {'CPU us/req':>11} {'Valkey us/req':>14}")  # fmt: skip
    for r in results:
        gap = f"{r.p50_ms - direct[r.mode, r.conns]:.3f}" if (r.mode, r.conns) in direct else ""
        gap = "" if r.target == "mock" else gap
        cpu = "" if r.cpu_us is None else f"{r.cpu_us:11.0f}"
        redis = "" if r.redis_cpu_us is None else f"{r.redis_cpu_us:14.0f}"
        print(f"{r.target:8} {r.mode:6} {r.conns:5d} {r.requests / r.seconds:8.0f} "
              f"{r.p50_ms:8.3f} {r.p99_ms:8.3f} {gap:>10} {cpu:>11} {redis}")  # fmt: skip
    by = {(r.target, r.mode, r.conns): r for r in results}
    print("\ngateway against the floor (goals: issue 16)")
    passed = True
    for mode in MODES:
        gateway_cpu = by["gateway", mode, concurrency].cpu_us or 0.0
        floor_cpu = by["floor", mode, concurrency].cpu_us or 1.0
        ratio = gateway_cpu / floor_cpu
        passed &= verdict(
            ratio <= CPU_RATIO_GOAL,
            f"{mode:6} CPU per call, c{concurrency}",
            f"{ratio:4.2f}x the floor ({gateway_cpu:.0f} / {floor_cpu:.0f} us; "
            f"goal <= {CPU_RATIO_GOAL}x)",
        )
    for mode in MODES:
        mock = by["mock", mode, 1].p50_ms
        gateway_added = by["gateway", mode, 1].p50_ms - mock
        floor_added = by["floor", mode, 1].p50_ms - mock
        over = gateway_added - floor_added
        passed &= verdict(
            over <= ADDED_P50_GOAL_MS,
            f"{mode:6} added p50, 1 client",
            f"floor's + {over:.3f} ms ({gateway_added:.3f} / {floor_added:.3f} ms; "
            f"goal <= + {ADDED_P50_GOAL_MS} ms)",
        )
    passed &= verdict(
        gateway_rss_mib < RSS_GOAL_MIB,
        "RSS per gateway worker",
        f"{gateway_rss_mib:.1f} MiB (goal < {RSS_GOAL_MIB} MiB)",
    )
    if any(r.target == "baseline" for r in results):
        compare_baseline(by, concurrency)
    return passed


def compare_baseline(by: dict[tuple[str, str, int], Result], concurrency: int) -> None:
    """This checkout's gateway against the baseline's, measured in turn in the same run."""
    print("\ngateway against the baseline checkout (same run, in turn: ours, it, it, ours)")
    for mode in MODES:
        ours, base = by["gateway", mode, concurrency], by["baseline", mode, concurrency]
        ratio = (ours.cpu_us or 0.0) / (base.cpu_us or 1.0)
        print(f"      {mode:6} CPU per call, c{concurrency:<3}   {ratio:4.2f}x the baseline "
              f"({ours.cpu_us or 0:.0f} / {base.cpu_us or 0:.0f} us)")  # fmt: skip
    for mode in MODES:
        gap = by["gateway", mode, 1].p50_ms - by["baseline", mode, 1].p50_ms
        print(f"      {mode:6} p50, 1 client       {gap:+.3f} ms against the baseline")


def verdict(ok: bool, name: str, detail: str) -> bool:
    print(f"{'PASS' if ok else 'MISS'}  {name:28} {detail}")
    return ok
