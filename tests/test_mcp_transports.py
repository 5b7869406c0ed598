"""The MCP server over real transports: stdio against the installed `coachloop serve`, and
streamable HTTP (uvicorn on 127.0.0.1) with a valid token, no token and a wrong token, in both
protocol eras; the /gates endpoint; the CLI's refusals."""
from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import threading
import time
import warnings
from pathlib import Path

import anyio
import httpx2
import pytest
import uvicorn
from mcp import Client
from mcp.client.stdio import StdioServerParameters
from mcp.client.streamable_http import streamable_http_client

from mcp_helpers import ERAS, Inbox, read_json, structured
from server.mcp.auth import TokenSet, hash_token
from server.mcp.http_app import build_http_app

COACHLOOP = shutil.which("coachloop", path=str(Path(sys.executable).parent)) or str(Path(sys.executable).parent / "coachloop")
TOKEN = "s3cret-token-for-tests"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ThreadServer:
    """uvicorn on 127.0.0.1:<random> in a thread; stopped on exit."""

    def __init__(self, app):
        self.port = free_port()
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning", lifespan="on"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self):
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            if time.monotonic() > deadline:
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.02)
        return self

    def __exit__(self, *exc):
        self.server.should_exit = True
        self.thread.join(10)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


@pytest.fixture
def http_server(coach):
    tokens = TokenSet([hash_token(TOKEN)])
    with ThreadServer(build_http_app(coach, host="127.0.0.1", tokens=tokens)) as srv:
        yield srv


def http_client(url: str, token: str | None, mode: str = "legacy") -> Client:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    hc = httpx2.AsyncClient(headers=headers, timeout=httpx2.Timeout(30.0))
    return Client(streamable_http_client(url + "/mcp", http_client=hc), mode=mode)


@pytest.mark.parametrize("mode", ERAS)
def test_http_with_valid_token_both_eras(http_server, coach, mode):
    async def main():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            async with http_client(http_server.url, TOKEN, mode) as c:
                assert c.protocol_version == ("2025-11-25" if mode == "legacy" else "2026-07-28")
                names = {t.name for t in (await c.list_tools()).tools}
                assert {"score", "playbook_write", "gate_check", "upsert_rep"} <= names
                rep = structured(await c.call_tool("upsert_rep", {"name": "Dana Whitfield"}))
                assert rep["id"] == "dana-whitfield"
                prof = read_json(await c.read_resource("coachloop://reps/dana-whitfield"))
                assert prof["rep"]["name"] == "Dana Whitfield"
                g = await c.get_prompt("coach_rep", {"rep": "dana-whitfield"})
                assert "dana-whitfield" in g.messages[0].content.text

    anyio.run(main)


@pytest.mark.parametrize("mode", ERAS)
def test_http_change_notifications_cross_thread(http_server, coach, mode):
    """The server runs on uvicorn's thread and loop; a reload on this thread must reach the
    subscribed HTTP client (2025: resources/subscribe + GET stream; 2026: subscriptions/listen)."""
    art = coach.playbook.all("paths")[0]
    uri = f"playbook://paths/{art.id}"
    f = coach.playbook_dir / art.path
    inbox = Inbox()

    async def main():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            headers = {"Authorization": f"Bearer {TOKEN}"}
            hc = httpx2.AsyncClient(headers=headers, timeout=httpx2.Timeout(30.0))
            async with Client(streamable_http_client(http_server.url + "/mcp", http_client=hc), mode=mode, message_handler=inbox) as c:
                await c.list_tools()  # the server has seen this client (and its loop) now
                if mode == "legacy":
                    await c.subscribe_resource(uri)
                    f.write_text(f.read_text() + "\n# edited\n")
                    await anyio.to_thread.run_sync(coach.reload)
                    await inbox.wait_for(lambda: uri in inbox.uris_updated(), timeout=15)
                else:
                    async with c.listen(resource_subscriptions=[uri]) as sub:
                        f.write_text(f.read_text() + "\n# edited\n")
                        await anyio.to_thread.run_sync(coach.reload)
                        with anyio.fail_after(15):
                            async for ev in sub:
                                if getattr(ev, "uri", None) == uri:
                                    break

    anyio.run(main)


def test_http_without_or_with_wrong_token_is_401(http_server):
    body = {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}}
    hdrs = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}
    with httpx2.Client(timeout=10) as h:
        r = h.post(http_server.url + "/mcp", json=body, headers=hdrs)
        assert r.status_code == 401 and r.json()["error"] == "missing_token"
        assert r.headers["www-authenticate"].startswith("Bearer")
        r = h.post(http_server.url + "/mcp", json=body, headers={**hdrs, "Authorization": "Bearer wrong"})
        assert r.status_code == 401 and r.json()["error"] == "invalid_token"
        r = h.post(http_server.url + "/mcp", json=body, headers={**hdrs, "Authorization": "Basic " + TOKEN})
        assert r.status_code == 401
        r = h.get(http_server.url + "/gates/anyone/dial")
        assert r.status_code == 401
        assert h.get(http_server.url + "/healthz").json()["ok"] is True
        r = h.post(http_server.url + "/mcp", json=body, headers={**hdrs, "Authorization": f"Bearer {TOKEN}"})
        assert r.status_code == 200

    async def main():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with pytest.raises(Exception):
                async with http_client(http_server.url, "wrong") as c:
                    await c.list_tools()

    anyio.run(main)


def test_gates_endpoint(http_server, coach):
    from store.reps import upsert_rep

    upsert_rep(coach.store, "Priya Raman")
    with httpx2.Client(timeout=10, headers={"Authorization": f"Bearer {TOKEN}"}) as h:
        r = h.get(http_server.url + "/gates/priya-raman/dial")
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["rep"] == "priya-raman" and body["activity"] == "dial" and body["allowed"] is True
        r = h.get(http_server.url + "/gates/nobody/dial")
        assert r.status_code == 404 and "nobody" in r.json()["message"]
        from tools.gates import block

        block(coach, "priya-raman", "dial", by="Manager Mo", reason="listen to two calls first")
        r = h.get(http_server.url + "/gates/Priya%20Raman/dial")  # a name works as well as the id
        body = r.json()
        assert r.status_code == 200 and body["allowed"] is False and body["status"] == "blocked"
        assert "Manager Mo" in body["reason"] and body["gates"][0]["activity"] == "dial"
        assert h.get(http_server.url + "/gates/priya-raman/demo").json()["allowed"] is True


def test_token_set_hashes_and_sources(tmp_path):
    f = tmp_path / "tokens"
    f.write_text(f"# team tokens\nplain-one\n{hash_token('hashed-two')}  # ci\n\n")
    ts = TokenSet.load(f, environ={"COACHLOOP_TOKENS": "env-three, env-four"})
    assert len(ts) == 4
    for t in ("plain-one", "hashed-two", "env-three", "env-four"):
        assert ts.check(t)
    assert not ts.check("plain-on") and not ts.check("") and not ts.check(None)
    assert all(isinstance(d, bytes) and len(d) == 32 for d in ts._digests)  # only hashes are kept
    from server.mcp.auth import AuthConfigError

    with pytest.raises(AuthConfigError, match="cannot read the tokens file"):
        TokenSet.load(tmp_path / "missing", environ={})


def _env(**extra):
    env = {k: v for k, v in os.environ.items() if not k.startswith("COACHLOOP_")}
    env.update(extra)
    return env


def test_cli_refuses_no_auth_off_loopback_and_http_without_tokens(playbook_dir, tmp_path, capsys, monkeypatch):
    from server.cli import main

    for k in ("COACHLOOP_TOKENS", "COACHLOOP_TOKENS_FILE"):
        monkeypatch.delenv(k, raising=False)
    where = ["--playbook", str(playbook_dir), "--db", str(tmp_path / "x.db")]
    assert main(["serve", *where, "--http", "0.0.0.0:8765", "--no-auth"]) == 1
    out = capsys.readouterr()
    assert "loopback" in out.err and out.out == ""
    assert main(["serve", *where, "--http", "127.0.0.1:8765"]) == 1
    assert "no access tokens" in capsys.readouterr().err
    assert main(["serve", *where, "--http", "nonsense"]) == 1
    assert "HOST:PORT" in capsys.readouterr().err
    assert main(["serve", *where, "--http", "127.0.0.1:8765", "--tokens-file", str(tmp_path / "missing")]) == 1
    assert "cannot read the tokens file" in capsys.readouterr().err
    assert main(["serve", *where, "--no-auth"]) == 1
    assert "--http only" in capsys.readouterr().err
    assert main(["serve", "--hash-token", "abc"]) == 0
    assert capsys.readouterr().out.strip() == hash_token("abc")


def test_cli_http_subprocess_with_env_tokens(playbook_dir, tmp_path):
    port = free_port()
    proc = subprocess.Popen(
        [COACHLOOP, "serve", "--playbook", str(playbook_dir), "--db", str(tmp_path / "h.db"), "--http", f"127.0.0.1:{port}", "--no-watch"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=_env(COACHLOOP_TOKENS=f"other,{TOKEN}"),
    )
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx2.get(url + "/healthz", timeout=1).status_code == 200:
                    break
            except httpx2.HTTPError:
                pass
            assert proc.poll() is None, proc.stderr.read().decode()
            assert time.monotonic() < deadline, "server did not come up"
            time.sleep(0.1)
        assert httpx2.get(url + "/gates/x/dial", timeout=5).status_code == 401

        async def main():
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                async with http_client(url, TOKEN) as c:
                    v = structured(await c.call_tool("validate_playbook", {}))
                    assert v["playbook"] == str(playbook_dir.resolve())

        anyio.run(main)
    finally:
        proc.terminate()
        proc.wait(10)


@pytest.mark.parametrize("mode", ERAS)
def test_stdio_installed_command(playbook_dir, tmp_path, mode):
    """The installed `coachloop serve` over stdio, with its playbook watcher: editing a file on disk
    reaches the subscribed client (2025: resources/subscribe; 2026: subscriptions/listen)."""
    params = StdioServerParameters(
        command=COACHLOOP, args=["serve", "--playbook", str(playbook_dir), "--db", str(tmp_path / "s.db"), "--no-webhooks"], env=_env(),
    )
    first_file = next(iter(sorted((playbook_dir / "scenarios").glob("*.md"))))
    art_text = first_file.read_text()
    inbox = Inbox()

    async def main():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            async with Client(params, mode=mode, message_handler=inbox) as c:
                names = {t.name for t in (await c.list_tools()).tools}
                assert {"score", "validate_playbook", "playbook_read"} <= names
                rep = structured(await c.call_tool("upsert_rep", {"name": "Priya Raman"}))
                assert rep["id"] == "priya-raman"
                bad = await c.call_tool("record_deal", {"id": "D", "rep": "nobody"})
                assert bad.is_error and "unknown rep" in bad.content[0].text
                idx = read_json(await c.read_resource("playbook://scenarios"))
                first = idx["items"][0]
                uri = first["uri"]
                assert (await c.read_resource(uri)).contents[0].text == art_text
                prompts = {p.name for p in (await c.list_prompts()).prompts}
                assert "coach_rep" in prompts
                # a change on disk, picked up by the server's watcher, reaches the subscriber
                if mode == "legacy":
                    await c.subscribe_resource(uri)
                    first_file.write_text(art_text + "\n<!-- edited on disk -->\n")
                    await inbox.wait_for(lambda: uri in inbox.uris_updated(), timeout=30)
                else:
                    async with c.listen(resource_subscriptions=[uri]) as sub:
                        first_file.write_text(art_text + "\n<!-- edited on disk -->\n")
                        with anyio.fail_after(30):
                            async for ev in sub:
                                if getattr(ev, "uri", None) == uri:
                                    break
                assert (await c.read_resource(uri)).contents[0].text.endswith("<!-- edited on disk -->\n")

    anyio.run(main)


def test_event_store_replays_one_stream_and_is_bounded():
    from server.mcp.event_store import MemoryEventStore

    store = MemoryEventStore(max_events=4)

    async def main():
        a1 = await store.store_event("A", None)  # priming event
        a2 = await store.store_event("A", {"n": 1})
        await store.store_event("B", {"n": 2})
        a3 = await store.store_event("A", {"n": 3})
        got = []

        async def cb(ev):
            got.append((ev.event_id, ev.message))

        assert await store.replay_events_after(a1, cb) == "A"
        assert got == [(a2, {"n": 1}), (a3, {"n": 3})]
        await store.store_event("B", {"n": 4})  # over the bound: the oldest (a1) is forgotten
        assert store.size == 4
        assert await store.replay_events_after(a1, cb) is None

    anyio.run(main)


def test_http_sse_streams_are_resumable(http_server):
    body = {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}}
    hdrs = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json", "Authorization": f"Bearer {TOKEN}"}
    with httpx2.Client(timeout=10) as h:
        r = h.post(http_server.url + "/mcp", json=body, headers=hdrs)
        assert r.status_code == 200 and '"serverInfo"' in r.text
        sid = r.headers["mcp-session-id"]
        hdrs = {**hdrs, "mcp-session-id": sid, "mcp-protocol-version": "2025-11-25"}
        h.post(http_server.url + "/mcp", json={"jsonrpc": "2.0", "method": "notifications/initialized"}, headers=hdrs)
        r = h.post(http_server.url + "/mcp", json={"jsonrpc": "2.0", "id": 2, "method": "tools/list"}, headers=hdrs)
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
        assert "retry: 1000" in r.text and "\nid: " in "\n" + r.text, r.text[:300]  # priming event with an id, retry hint
        assert '"validate_playbook"' in r.text


def test_hostport_and_loopback_rules():
    from server.mcp.netaddr import ServeError, is_loopback, parse_hostport

    assert parse_hostport("127.0.0.1:8765") == ("127.0.0.1", 8765)
    assert parse_hostport("[::1]:9000") == ("::1", 9000)
    assert parse_hostport("localhost:0") == ("localhost", 0)
    for bad in ("8765", "127.0.0.1:http", ":8765", "127.0.0.1:70000"):
        with pytest.raises(ServeError):
            parse_hostport(bad)
    assert is_loopback("127.0.0.1") and is_loopback("127.1.2.3") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0") and not is_loopback("192.168.1.5") and not is_loopback("::") and not is_loopback("example.com")
