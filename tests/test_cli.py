"""The `hotline` command as a user runs it."""

import json
import os
import subprocess
import sys

import pytest
from click.testing import CliRunner

from hotline.cli import main
from tests.factories import make_org


def run_cli(settings, *args, input=None):
    env = {"HOTLINE_DATABASE_URL": settings.database_url.get_secret_value(),
           "HOTLINE_VAR_DIR": str(settings.var_dir), "HOTLINE_ENV": "test"}
    return CliRunner().invoke(main, list(args), env=env, input=input, catch_exceptions=False)


def test_help_lists_every_command():
    out = CliRunner().invoke(main, ["--help"]).output
    for command in ("db", "seed", "serve", "kb", "user", "pbx"):
        assert command in out
    kb_help = CliRunner().invoke(main, ["kb", "--help"]).output
    assert "import" in kb_help and "search" in kb_help


def test_database_unreachable_is_one_line_and_nonzero():
    env = {**os.environ, "HOTLINE_DATABASE_URL": "postgresql://nobody@127.0.0.1:1/none"}
    proc = subprocess.run([sys.executable, "-m", "hotline", "kb", "search", "停水"],
                          capture_output=True, text=True, env=env, timeout=60)
    assert proc.returncode != 0
    assert "Traceback" not in proc.stderr
    error_lines = [line for line in proc.stderr.splitlines() if line.startswith("Error:")]
    assert len(error_lines) == 1 and "unreachable" in error_lines[0]


def test_unmigrated_database_says_what_to_do(tmp_path):
    env = {**os.environ, "HOTLINE_VAR_DIR": str(tmp_path), "HOTLINE_DATABASE_URL": ""}
    proc = subprocess.run([sys.executable, "-m", "hotline", "kb", "search", "停水"],
                          capture_output=True, text=True, env=env, timeout=60)
    assert proc.returncode != 0 and "hotline db upgrade" in proc.stderr


def test_kb_import_and_search_json(settings, services, session, tmp_path):
    make_org(session)
    path = tmp_path / "kb.jsonl"
    path.write_text(
        '{"id": "kb-1", "title": "燃气泄漏处置", "question": "燃气泄漏怎么办",'
        ' "answer": "关闭阀门，开窗通风，到室外拨打抢修电话。", "department": "D-WATER",'
        ' "tags": ["燃气"]}\n', encoding="utf-8")
    r = run_cli(settings, "kb", "import", str(path))
    assert r.exit_code == 0 and "imported 1 new" in r.output
    r = run_cli(settings, "kb", "import", str(path))
    assert "1 unchanged" in r.output
    r = run_cli(settings, "kb", "search", "煤气漏了", "--json", "--limit", "3")
    items = json.loads(r.output)
    assert items[0]["id"] == "kb-1" and {"title", "score", "snippet"} <= set(items[0])


def test_kb_import_bad_file_imports_nothing(settings, services, session, tmp_path):
    make_org(session)
    path = tmp_path / "kb.jsonl"
    path.write_text('{"id": "kb-1", "title": "t", "question": "q", "answer": "a"}\n'
                    '{"id": "kb-2", "title": "t", "question": "q"}\n', encoding="utf-8")
    r = run_cli(settings, "kb", "import", str(path))
    assert r.exit_code == 1
    assert "kb.jsonl:2: field 'answer'" in r.output and "nothing was imported" in r.output
    r = run_cli(settings, "kb", "search", "t", "--json")
    assert json.loads(r.output) == []


def test_kb_import_missing_file(settings, services):
    r = run_cli(settings, "kb", "import", "/nonexistent/kb.jsonl")
    assert r.exit_code == 1 and "nothing was imported" in r.output


def test_user_add(settings, services, session):
    make_org(session)
    r = run_cli(settings, "user", "add", "agent09", "--role", "agent", "--extension", "8009",
                "--password", "a-long-password")
    assert r.exit_code == 0, r.output
    r = run_cli(settings, "user", "add", "agent09", "--role", "agent", "--password",
                "a-long-password")
    assert r.exit_code == 1 and "already exists" in r.output
    r = run_cli(settings, "user", "add", "clerk", "--role", "department_staff",
                "--password", "a-long-password")
    assert r.exit_code == 1 and "department" in r.output
    r = run_cli(settings, "user", "add", "clerk", "--role", "agent", "--password", "short")
    assert r.exit_code == 1 and "password" in r.output


@pytest.mark.parametrize("args", [["kb", "search", "x", "--limit", "0"], ["user", "add", "u",
                                  "--role", "boss", "--password", "a-long-password"]])
def test_bad_arguments_are_usage_errors(settings, args):
    assert run_cli(settings, *args).exit_code == 2


def _free_port():
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_serve_answers_healthz_and_docs(settings, services):
    import time
    import urllib.request

    port = _free_port()
    env = {**os.environ, "HOTLINE_DATABASE_URL": settings.database_url.get_secret_value(),
           "HOTLINE_VAR_DIR": str(settings.var_dir), "HOTLINE_ENV": "test",
           # the FastAGI server started by `serve` must not collide with a dev PBX's
           "HOTLINE_PBX__AGI_PORT": str(_free_port())}
    proc = subprocess.Popen([sys.executable, "-m", "hotline", "serve", "--port", str(port)],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as r:
                    body = json.loads(r.read())
                break
            except OSError:
                assert proc.poll() is None, proc.stderr.read().decode()
                assert time.monotonic() < deadline, "serve did not come up"
                time.sleep(0.3)
        assert body["checks"]["database"]["ok"] is True
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/docs", timeout=5) as r:
            assert r.status == 200
    finally:
        proc.terminate()
        proc.wait(20)


def test_serve_with_database_down_exits_with_one_line():
    env = {**os.environ, "HOTLINE_DATABASE_URL": "postgresql://nobody@127.0.0.1:1/none"}
    proc = subprocess.run([sys.executable, "-m", "hotline", "serve", "--port", "1"],
                          capture_output=True, text=True, env=env, timeout=60)
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr and "unreachable" in proc.stderr
