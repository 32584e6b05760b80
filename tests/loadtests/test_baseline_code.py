"""A server the load harness starts for a checkout runs that checkout's code, whatever folder
the harness runs in (uvicorn puts its --app-dir, by default the current folder, ahead of
PYTHONPATH: every `--baseline` run measured the current checkout twice until this was fixed)."""

from __future__ import annotations

import os
from pathlib import Path

import httpx

from devstack.servers import free_port
from loadtests.run import uvicorn_argv
from loadtests.scratch import start, stop

PROBE = """
def create_app():
    async def app(scope, receive, send):
        if scope["type"] != "http":
            return
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"NAME"})
    return app
"""


def test_a_checkouts_server_runs_its_code_from_any_current_folder(tmp_path: Path) -> None:
    for name in ("here", "there"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "probe_app.py").write_text(PROBE.replace("NAME", name))
    port = free_port()
    argv = uvicorn_argv("probe_app:create_app", port, 1, tmp_path / "there")
    cwd = os.getcwd()
    os.chdir(tmp_path / "here")  # the harness's own folder holds the other code
    try:
        env = {**os.environ, "PYTHONPATH": str(tmp_path / "there")}
        server = start(argv, tmp_path / "server.log", port, env)
    finally:
        os.chdir(cwd)
    try:
        assert httpx.get(f"http://127.0.0.1:{port}/").text == "there"
    finally:
        stop(server)
