"""``hpcml sage download`` against a local HTTP server with basic auth, flaky and truncating paths."""
from __future__ import annotations

import base64
import json
import logging
import os
import stat
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pandas as pd
import pytest

from hpcml.core import atomic
from hpcml.sage import download
from hpcml.sage.download import REPORT, download_all, plan_jobs

USER, PASSWORD = "alice", "s3cret-Pa55"
TOKEN = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
SETTINGS = {"workers": 4, "retries": 3, "timeout": 5}
RGB = "1700000000000000000_6144x2048_position1.jpg"
THERMAL = "1700000000000000000_right_336x252_14bit.thermal.celsius_position1.csv"


class Handler(BaseHTTPRequestHandler):
    """Serves ``server.files``; paths under /private/ need basic auth. Per path, ``server.behaviour``:
    ``("fail", n)`` answers 503 n times, ``("truncate", n)`` sends half the body n times and closes,
    ``("ignore-range",)`` always answers 200, ``("redirect", to)`` answers 302."""

    def do_GET(self) -> None:
        server = self.server
        server.requests.append((self.path, self.headers.get("Range"), self.headers.get("Authorization")))
        if self.path.startswith("/private/") and self.headers.get("Authorization") != f"Basic {TOKEN}":
            self.send_response(401)
            self.send_header("WWW-Authenticate", 'Basic realm="sage"')
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        behaviour = server.behaviour.get(self.path, ("",))
        if behaviour[0] == "redirect":
            self.send_response(302)
            self.send_header("Location", behaviour[1])
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        if behaviour[0] == "fail" and behaviour[1] > 0:
            server.behaviour[self.path] = ("fail", behaviour[1] - 1)
            self.send_error(503)
            return
        if self.path not in server.files:
            self.send_error(404)
            return
        data = server.files[self.path]
        start = int(self.headers["Range"][6:-1]) if self.headers.get("Range") and behaviour[0] != "ignore-range" else None
        if start is not None and start >= len(data):
            self.send_response(416)
            self.send_header("Content-Range", f"bytes */{len(data)}")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        body = data[start or 0:]
        self.send_response(200 if start is None else 206)
        if start is not None:
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if behaviour[0] == "truncate" and behaviour[1] > 0:
            server.behaviour[self.path] = ("truncate", behaviour[1] - 1)
            body = body[:len(body) // 2]  # HTTP/1.0: the connection closes after this
        self.wfile.write(body)

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def server():
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.files, httpd.behaviour, httpd.requests = {}, {}, []
    httpd.url = f"http://127.0.0.1:{httpd.server_address[1]}"
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    yield httpd
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture(autouse=True)
def isolated(tmp_path, monkeypatch):
    """No real credentials reach a test, and retries wait milliseconds."""
    (tmp_path / "home").mkdir()
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv("SAGE_USER", raising=False)
    monkeypatch.delenv("SAGE_PASS", raising=False)
    monkeypatch.setattr(download, "BACKOFF", 0.01)


def _serve(server, path: str, size: int = 5000) -> bytes:
    data = bytes((i * 7 + len(path)) % 256 for i in range(size))
    server.files[path] = data
    return data


def _table(tmp_path, rows, name="meta.parquet"):
    """A metadata table of (url, vsn, filename) rows, with the other columns a query returns."""
    frame = pd.DataFrame({"timestamp": pd.Timestamp("2024-06-01", tz="UTC"), "name": "upload",
                          "value": [r[0] for r in rows], "meta.vsn": [r[1] for r in rows],
                          "meta.filename": [r[2] for r in rows], "meta.position": 1})
    path = tmp_path / name
    frame.to_csv(path, index=False) if path.suffix == ".csv" else frame.to_parquet(path)
    return path


def _run(tmp_path, rows, name="meta.parquet"):
    out = tmp_path / "out"
    report = download_all(_table(tmp_path, rows, name), out, SETTINGS)
    assert json.loads((out / REPORT).read_text()) == report
    return out, report


def test_downloads_into_the_groups_layout_with_credentials_from_the_environment(tmp_path, server, monkeypatch):
    monkeypatch.setenv("SAGE_USER", USER)
    monkeypatch.setenv("SAGE_PASS", PASSWORD)
    rgb, thermal = _serve(server, f"/private/{RGB}"), _serve(server, f"/public/{THERMAL}", 300)
    rows = [(server.url + f"/private/{RGB}", "W056", RGB), (server.url + f"/public/{THERMAL}", "W056", THERMAL),
            (server.url + f"/public/{THERMAL}", "W056", THERMAL)]  # a repeated row is fetched once
    out, report = _run(tmp_path, rows, "meta.csv")
    assert (out / "rgb/W056" / RGB).read_bytes() == rgb
    assert (out / "thermal/W056" / THERMAL).read_bytes() == thermal
    assert stat.S_IMODE(os.stat(out / "rgb/W056" / RGB).st_mode) == 0o666 & ~atomic._current_umask()
    assert (report["files"], report["downloaded"], report["skipped"], report["failed"]) == (2, 2, 0, [])
    assert report["bytes"] == 5300
    assert sorted(p.name for p in out.rglob("*") if p.is_file()) == sorted([RGB, THERMAL, REPORT])


def test_credentials_from_netrc_by_host(tmp_path, server):
    netrc = tmp_path / "home" / ".netrc"
    netrc.write_text(f"machine 127.0.0.1 login {USER} password {PASSWORD}\n")
    netrc.chmod(0o600)
    data = _serve(server, f"/private/{RGB}")
    out, report = _run(tmp_path, [(server.url + f"/private/{RGB}", "W001", RGB)])
    assert (out / "rgb/W001" / RGB).read_bytes() == data and report["failed"] == []


@pytest.mark.parametrize("credentials", [None, (USER, "wrong")])
def test_missing_or_wrong_credentials_are_a_listed_401_not_a_crash(tmp_path, server, monkeypatch, credentials):
    if credentials:
        monkeypatch.setenv("SAGE_USER", credentials[0])
        monkeypatch.setenv("SAGE_PASS", credentials[1])
    _serve(server, f"/private/{RGB}")
    _serve(server, f"/public/{THERMAL}")
    out, report = _run(tmp_path, [(server.url + f"/private/{RGB}", "W001", RGB),
                                  (server.url + f"/public/{THERMAL}", "W001", THERMAL)])
    assert report["downloaded"] == 1 and (out / "thermal/W001" / THERMAL).exists()
    [failure] = report["failed"]
    assert failure["destination"] == f"rgb/W001/{RGB}" and failure["attempts"] == 1 and failure["row"] == 0
    assert failure["reason"].startswith("HTTP 401") and ("SAGE_USER" in failure["reason"]) == (credentials is None)
    assert not (out / "rgb/W001" / RGB).exists()


def test_a_503_twice_then_success_is_downloaded_after_retries(tmp_path, server):
    data = _serve(server, f"/public/{RGB}")
    server.behaviour[f"/public/{RGB}"] = ("fail", 2)
    out, report = _run(tmp_path, [(server.url + f"/public/{RGB}", "W001", RGB)])
    assert (out / "rgb/W001" / RGB).read_bytes() == data and report["downloaded"] == 1
    assert len(server.requests) == 3


def test_a_truncated_response_is_resumed_with_range_and_ends_byte_identical(tmp_path, server):
    data = _serve(server, f"/public/{RGB}", 100_000)
    server.behaviour[f"/public/{RGB}"] = ("truncate", 1)
    out, report = _run(tmp_path, [(server.url + f"/public/{RGB}", "W001", RGB)])
    assert (out / "rgb/W001" / RGB).read_bytes() == data and report["failed"] == []
    assert [request[1] for request in server.requests] == [None, f"bytes={len(data) // 2}-"]


def test_a_server_ignoring_range_restarts_the_file_cleanly(tmp_path, server):
    data = _serve(server, f"/public/{RGB}")
    server.behaviour[f"/public/{RGB}"] = ("ignore-range",)
    part = tmp_path / "out/rgb/W001" / f".{RGB}.part"
    part.parent.mkdir(parents=True)
    part.write_bytes(b"stale bytes of an older attempt")
    out, _ = _run(tmp_path, [(server.url + f"/public/{RGB}", "W001", RGB)])
    assert (out / "rgb/W001" / RGB).read_bytes() == data and not part.exists()
    assert server.requests[0][1] == f"bytes={len(b'stale bytes of an older attempt')}-"


def test_a_complete_part_left_by_a_killed_run_is_kept(tmp_path, server):
    data = _serve(server, f"/public/{RGB}")
    part = tmp_path / "out/rgb/W001" / f".{RGB}.part"
    part.parent.mkdir(parents=True)
    part.write_bytes(data)
    out, report = _run(tmp_path, [(server.url + f"/public/{RGB}", "W001", RGB)])
    assert (out / "rgb/W001" / RGB).read_bytes() == data and report["downloaded"] == 1


def test_a_404_is_listed_and_a_rerun_skips_complete_files(tmp_path, server):
    _serve(server, f"/public/{RGB}")
    rows = [(server.url + f"/public/{RGB}", "W001", RGB), (server.url + "/public/gone.csv", "W001", "gone.csv")]
    _, report = _run(tmp_path, rows)
    assert report["downloaded"] == 1
    assert [(f["destination"], f["reason"], f["attempts"]) for f in report["failed"]] == [
        ("thermal/W001/gone.csv", "HTTP 404 Not Found", 1)]
    server.requests.clear()
    _, report = _run(tmp_path, rows)
    assert (report["downloaded"], report["skipped"], len(report["failed"])) == (0, 1, 1)
    assert [request[0] for request in server.requests] == ["/public/gone.csv"]


def test_credentials_never_reach_the_report_or_the_log(tmp_path, server, monkeypatch, caplog):
    caplog.set_level(logging.DEBUG)
    monkeypatch.setenv("SAGE_USER", USER)
    monkeypatch.setenv("SAGE_PASS", PASSWORD)
    _serve(server, "/public/target.jpg")
    server.behaviour["/private/moved.jpg"] = ("redirect", "/public/target.jpg")
    server.behaviour["/private/down.jpg"] = ("fail", 99)
    host = server.url.removeprefix("http://")
    rows = [(f"http://{USER}:{PASSWORD}@{host}/private/missing.jpg", "W001", "missing.jpg"),
            (f"{server.url}/private/down.jpg", "W001", "down.jpg"),
            (f"{server.url}/private/moved.jpg", "W001", "moved.jpg")]
    out, report = _run(tmp_path, rows)
    assert report["failed"][0]["url"] == f"{server.url}/private/missing.jpg"
    assert report["failed"][1]["attempts"] == SETTINGS["retries"] + 1
    assert report["downloaded"] == 1
    assert ("/private/moved.jpg", None, f"Basic {TOKEN}") in server.requests
    assert ("/public/target.jpg", None, None) in server.requests  # a redirect does not carry them
    written = (out / REPORT).read_text() + caplog.text
    assert "carried credentials" in caplog.text
    for secret in (PASSWORD, TOKEN, f"{USER}:", "Authorization"):
        assert secret not in written


@pytest.mark.parametrize("row, message", [
    (("http://h/a.jpg", "", "a.jpg"), r"meta\.csv, row 0 \(line 2\): meta\.vsn empty"),
    (("http://h/a.txt", "W001", "a.txt"), "neither an optical .jpg nor a thermal .csv"),
    (("http://h/a.jpg", "W001", "../a.jpg"), "is not a plain name"),
    (("ftp://h/a.jpg", "W001", "a.jpg"), "not an http"),
])
def test_rows_that_cannot_work_are_named(tmp_path, row, message):
    with pytest.raises(ValueError, match=message):
        plan_jobs(_table(tmp_path, [row], "meta.csv"))


def test_a_table_without_the_columns_or_with_two_files_under_one_name_is_refused(tmp_path):
    path = tmp_path / "meta.parquet"
    pd.DataFrame({"value": ["http://h/a.jpg"]}).to_parquet(path)
    with pytest.raises(ValueError, match=r"meta\.parquet: no column meta\.vsn, meta\.filename"):
        plan_jobs(path)
    with pytest.raises(ValueError, match=r"row 1: rgb/W001/a\.jpg also comes from row 0"):
        plan_jobs(_table(tmp_path, [("http://h/a.jpg", "W001", "a.jpg"), ("http://h/b.jpg", "W001", "a.jpg")]))
