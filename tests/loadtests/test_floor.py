"""The load harness's floor proxies like the gateway's stack with none of its logic, and the
report reads the gateway's figures as ratios to it."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import orjson
import pytest

from loadtests.floor import FloorProxy
from loadtests.report import report
from loadtests.wrk import Result
from tests.support import serve

BODY = {"model": "mock-model", "messages": [{"role": "user", "content": "Hi [[mock chunks=5]]"}]}


@pytest.fixture(scope="module")
def floor_url(mock_provider_url: str) -> Iterator[str]:
    with serve(FloorProxy(mock_provider_url + "/v1/chat/completions"), health_path="/") as url:
        yield url


def test_floor_relays_a_json_answer_with_its_length(floor_url: str) -> None:
    answer = httpx.post(floor_url + "/v1/chat/completions", content=orjson.dumps(BODY))
    assert answer.status_code == 200
    assert answer.headers["content-length"] == str(len(answer.content))
    completion = answer.json()
    assert completion["object"] == "chat.completion"
    assert completion["choices"][0]["message"]["content"].startswith("Mock reply to: ")


def test_floor_relays_a_stream_to_its_end(floor_url: str) -> None:
    body = orjson.dumps({**BODY, "stream": True})
    answer = httpx.post(floor_url + "/v1/chat/completions", content=body)
    assert answer.headers["content-type"].startswith("text/event-stream")
    events = [e for e in answer.text.split("\n\n") if e]
    assert events[-1] == "data: [DONE]"
    text = "".join(
        orjson.loads(e[6:])["choices"][0]["delta"].get("content") or ""
        for e in events[:-1]
        if '"choices":[{' in e
    )
    assert text.startswith("Mock reply to: ")


def test_floor_passes_the_upstream_status_on(floor_url: str) -> None:
    answer = httpx.post(floor_url + "/v1/chat/completions", content=b'{"messages": 1}')
    assert answer.status_code == 400


def _results(gateway_cpu: float, gateway_p50: float) -> list[Result]:
    rows = []
    for mode in ("json", "stream"):
        for conns in (32, 1):
            rows.append(Result("mock", mode, conns, 1000, 1.0, 0.2, 1.0, None))
            rows.append(Result("floor", mode, conns, 1000, 1.0, 0.4, 1.0, 0.1))
            rows.append(Result("gateway", mode, conns, 1000, 1.0, gateway_p50, 1.0,
                               gateway_cpu, 0.04))  # fmt: skip
    return rows


def test_report_passes_the_goals_as_ratios_to_the_floor(
    capsys: pytest.CaptureFixture[str],
) -> None:
    # 100 us per floor call, the floor adding 0.2 ms: 190 us and 0.45 ms added are within.
    assert report(_results(0.19, 0.65), 32, gateway_rss_mib=70)
    out = capsys.readouterr().out
    assert "PASS  json   CPU per call, c32     1.90x the floor (190 / 100 us" in out
    assert "PASS  stream added p50, 1 client   floor's + 0.250 ms" in out
    assert "MISS" not in out


def test_report_misses_over_twice_the_floor_or_slower_than_its_p50_plus_0_3_ms(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert not report(_results(0.21, 0.75), 32, gateway_rss_mib=70)
    out = capsys.readouterr().out
    assert "MISS  stream CPU per call, c32     2.10x" in out
    assert "MISS  json   added p50, 1 client   floor's + 0.350 ms" in out
    assert not report(_results(0.1, 0.5), 32, gateway_rss_mib=80)
    assert "MISS  RSS per gateway worker       80.0 MiB" in capsys.readouterr().out
