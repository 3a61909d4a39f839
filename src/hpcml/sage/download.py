"""``hpcml sage download``: fetch the files a SAGE metadata table lists, in the group's layout.

A query returns thousands of small files behind a link that drops now and then, so the
downloads run in a thread pool, transient failures (connection errors, timeouts, HTTP 5xx
and 429) are retried with exponential back-off, and what arrived is kept in a hidden
``.<name>.part`` beside the destination and resumed with an HTTP Range request. A file
takes its final name only once its size matches what the server announced, so a file
that exists is complete and a rerun skips it. A file that still cannot be fetched is
listed in ``download_report.json`` and the run goes on with the others.

Credentials for private nodes come only from ``SAGE_USER``/``SAGE_PASS`` (for every host
in the table) or from ``~/.netrc`` (by host). They are sent only to the host a URL names,
never along a redirect, and neither they nor a URL that carried them reach the log or
the report.
"""
from __future__ import annotations

import base64
import http.client
import itertools
import logging
import netrc
import os
import ssl
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pandas as pd

from hpcml.core.atomic import write_json

log = logging.getLogger(__name__)
REPORT = "download_report.json"
COLUMNS = ("value", "meta.vsn", "meta.filename")
KINDS = {".jpg": "rgb", ".jpeg": "rgb", ".csv": "thermal"}
# Seconds before the first retry, doubled for each further one; a server's Retry-After
# can lengthen a wait up to MAX_WAIT. Tests shorten BACKOFF.
BACKOFF = 2.0
MAX_WAIT = 300.0
PROGRESS_FILES, PROGRESS_SECONDS = 200, 30.0
CHUNK = 1 << 20
USER_AGENT = "hpcml-sage-download"
CREDENTIALS_HINT = "set SAGE_USER and SAGE_PASS, or add the host to ~/.netrc"


@dataclass(frozen=True)
class Job:
    """One file: ``url`` carries no credentials; ``dest`` is relative to the output folder."""

    row: int
    url: str
    dest: str


class Transient(Exception):
    """A failure the next attempt may get past (or resume from); ``wait`` is the server's Retry-After."""

    def __init__(self, reason: str, wait: float = 0.0) -> None:
        super().__init__(reason)
        self.wait = wait


class Permanent(Exception):
    """A failure that retrying cannot fix (404, 401, an untrusted certificate, ...)."""


def download_all(metadata: Path, out: Path, settings: dict[str, Any]) -> dict[str, Any]:
    """Fetch every file ``metadata`` lists into ``out``; write and return the report.

    ``settings`` is the config's ``sage.download`` (``workers``, ``retries``, ``timeout``).
    Raises ValueError for a table (or credentials) that cannot work, before any download.
    """
    metadata, out = Path(metadata), Path(out)
    jobs = plan_jobs(metadata)
    auth = _auth_headers({urlsplit(job.url).hostname for job in jobs})
    counts = {"downloaded": 0, "skipped": 0, "bytes": 0}
    failed: list[dict[str, Any]] = []
    tic = last = time.monotonic()
    pool = ThreadPoolExecutor(max_workers=settings["workers"], thread_name_prefix="sage-download")
    try:
        futures = [pool.submit(_fetch, job, out, auth, settings) for job in jobs]
        for done, future in enumerate(as_completed(futures), 1):
            outcome = future.result()
            if "reason" in outcome:
                failed.append(outcome)
            else:
                counts[outcome.pop("status")] += 1
                counts["bytes"] += outcome["bytes"]
            if done % PROGRESS_FILES == 0 or time.monotonic() - last >= PROGRESS_SECONDS or done == len(jobs):
                last = time.monotonic()
                log.info("downloads: %d/%d files (%d new, %d already there, %d failed), %.1f MB",
                         done, len(jobs), counts["downloaded"], counts["skipped"], len(failed), counts["bytes"] / 1e6)
    except BaseException:
        pool.shutdown(wait=False, cancel_futures=True)
        raise
    pool.shutdown()
    failed.sort(key=lambda entry: entry["row"])
    report = {"metadata": str(metadata), "files": len(jobs), **counts,
              "seconds": round(time.monotonic() - tic, 1), "failed": failed}
    write_json(out / REPORT, report)
    if failed:
        log.warning("%d of %d files could not be fetched (first: %s: %s); see %s and rerun to retry them",
                    len(failed), len(jobs), failed[0]["destination"], failed[0]["reason"], out / REPORT)
    return report


def plan_jobs(metadata: Path) -> list[Job]:
    """The files ``metadata`` lists, one per destination; a row that cannot work raises ValueError naming it."""
    table = _read_table(metadata)
    missing = [column for column in COLUMNS if column not in table.columns]
    if missing:
        raise ValueError(f"{metadata}: no column {', '.join(missing)}; a table as sage_data_client.query returns it "
                         f"has value (the file URL), meta.vsn and meta.filename (this one has {list(table.columns)})")
    jobs: dict[str, Job] = {}
    n_userinfo = 0
    for row, values in enumerate(zip(*(table[column] for column in COLUMNS))):
        where = f"{metadata}, row {row}" + (f" (line {row + 2})" if metadata.suffix.lower() == ".csv" else "")
        url, node, name = ("" if pd.isna(value) else str(value).strip() for value in values)
        empty = [column for column, value in zip(COLUMNS, (url, node, name)) if not value]
        if empty:
            raise ValueError(f"{where}: {', '.join(empty)} empty; every row needs the file URL (value), the node "
                             "(meta.vsn) and the file name (meta.filename); drop or fix the row")
        kind = KINDS.get(PurePosixPath(name).suffix.lower())
        if kind is None:
            raise ValueError(f"{where}: {name!r} is neither an optical .jpg nor a thermal .csv; keep only the "
                             "camera's image and thermal uploads in the table")
        for column, value in (("meta.vsn", node), ("meta.filename", name)):
            if "/" in value or "\\" in value or value in (".", ".."):
                raise ValueError(f"{where}: {column} {value!r} is not a plain name (it would leave the output folder)")
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"{where}: value is not an http(s) URL with a host (scheme {parts.scheme!r})")
        if "@" in parts.netloc:
            n_userinfo += 1
            url = urlunsplit(parts._replace(netloc=parts.netloc.rpartition("@")[2]))
        job = Job(row, url, f"{kind}/{node}/{name}")
        first = jobs.setdefault(job.dest, job)
        if first.url != url:
            raise ValueError(f"{where}: {job.dest} also comes from row {first.row} with another URL; "
                             "the table lists two different files under one name")
    if n_userinfo:
        log.warning("%d URLs in %s carried credentials; they were removed and are not used (%s)",
                    n_userinfo, metadata, CREDENTIALS_HINT)
    if not jobs:
        log.warning("%s lists no files", metadata)
    return list(jobs.values())


def _read_table(path: Path) -> pd.DataFrame:
    suffix = path.suffix.lower()
    if suffix in (".parquet", ".pq"):
        return pd.read_parquet(path)
    if suffix == ".csv":
        return pd.read_csv(path, dtype=str, keep_default_na=False)
    raise ValueError(f"{path}: a metadata table must be Parquet (.parquet) or CSV (.csv)")


def _auth_headers(hosts: set[str | None]) -> dict[str, dict[str, str]]:
    """A Basic-auth header per host: SAGE_USER/SAGE_PASS for all, else the host's ~/.netrc entry, else none."""
    user, password = os.environ.get("SAGE_USER"), os.environ.get("SAGE_PASS")
    if bool(user) != bool(password):
        raise ValueError("only one of SAGE_USER and SAGE_PASS is set; set both, or neither to use ~/.netrc")
    if user:
        pairs = {host: (user, password) for host in hosts if host}
        log.info("credentials: SAGE_USER and SAGE_PASS")
    else:
        entries = _netrc()
        pairs = {host: (entry[0], entry[2]) for host in hosts if host and entries and (entry := entries.authenticators(host))}
        log.info("credentials: %s", f"~/.netrc for {', '.join(sorted(pairs))}" if pairs else "none (public files only)")
    return {host: {"Authorization": "Basic " + base64.b64encode(f"{login}:{secret}".encode()).decode()}
            for host, (login, secret) in pairs.items()}


def _netrc() -> netrc.netrc | None:
    try:
        return netrc.netrc()
    except FileNotFoundError:
        return None
    except netrc.NetrcParseError as error:
        # the parser's message can quote a token of the file, which may be a password
        hint = "run chmod 600 on it" if "too permissive" in error.msg else "fix the syntax"
        raise ValueError(f"{error.filename}, line {error.lineno}: cannot use it for credentials; {hint}, "
                         "or set SAGE_USER and SAGE_PASS") from None


def _fetch(job: Job, out: Path, auth: dict[str, dict[str, str]], settings: dict[str, Any]) -> dict[str, Any]:
    """Download one file with retries; the outcome for the report (a failure carries ``reason``)."""
    dest = out / job.dest
    if dest.exists():
        return {"status": "skipped", "bytes": 0}
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(f".{dest.name}.part")
    headers = auth.get(urlsplit(job.url).hostname, {})
    for attempt in itertools.count(1):
        try:
            _attempt(job.url, part, headers, settings["timeout"])
        except Permanent as error:
            return _failure(job, error, attempt)
        except Transient as error:
            if attempt > settings["retries"]:
                return _failure(job, error, attempt)
            wait = max(BACKOFF * 2 ** (attempt - 1), error.wait)
            log.debug("%s: %s; retry %d of %d in %.1f s", job.url, error, attempt, settings["retries"], wait)
            time.sleep(wait)
        else:
            os.replace(part, dest)
            return {"status": "downloaded", "bytes": dest.stat().st_size}


def _failure(job: Job, error: Exception, attempts: int) -> dict[str, Any]:
    log.debug("%s: giving up after %d attempts: %s", job.url, attempts, error)
    return {"row": job.row, "url": job.url, "destination": job.dest, "reason": str(error), "attempts": attempts}


def _attempt(url: str, part: Path, headers: dict[str, str], timeout: float) -> None:
    """Fetch what ``part`` lacks; return once it holds the whole file (synced), else raise Transient or Permanent."""
    offset = part.stat().st_size if part.exists() else 0
    request = urllib.request.Request(url, headers={"User-Agent": USER_AGENT} | ({"Range": f"bytes={offset}-"} if offset else {}))
    for key, value in headers.items():
        request.add_unredirected_header(key, value)  # a redirect to another host must not carry them
    try:
        response = urllib.request.urlopen(request, timeout=timeout)
    except urllib.error.HTTPError as error:
        error.close()
        if error.code == 416 and offset:
            if _content_range(error.headers.get("Content-Range", ""))[1] == offset:
                return  # the part was complete when an earlier run stopped
            part.unlink()
            raise Transient("the partial file does not match the server's; starting over") from None
        raise _http_failure(error, bool(headers)) from None
    except (OSError, http.client.HTTPException) as error:
        raise _network_failure(error) from None
    with response:
        if response.status == 206:
            start, total = _content_range(response.headers.get("Content-Range", ""))
            if start != offset:
                part.unlink()
                raise Transient(f"the server resumed at byte {start}, not {offset}; starting over")
        else:  # 200: the whole file, also when the server ignored the Range
            length = response.headers.get("Content-Length", "")
            total = int(length) if length.isdigit() else None
        with open(part, "ab" if response.status == 206 else "wb") as handle:
            while chunk := _read(response):
                handle.write(chunk)
            handle.flush()
            os.fsync(handle.fileno())
    size = part.stat().st_size
    if total is not None and size != total:
        if size > total:
            part.unlink()
        raise Transient(f"incomplete: {size} of {total} bytes")


def _read(response: http.client.HTTPResponse) -> bytes:
    try:
        return response.read(CHUNK)
    except (OSError, http.client.HTTPException) as error:
        raise _network_failure(error) from None


def _content_range(header: str) -> tuple[int | None, int | None]:
    """(first byte, total size) of ``bytes 100-199/200`` or ``bytes */200``; None where absent or ``*``."""
    unit, _, spec = header.partition(" ")
    span, _, total = spec.partition("/")
    if unit != "bytes" or not total:
        raise Transient(f"the server sent a malformed Content-Range {header[:60]!r}")
    start = span.partition("-")[0]
    return (int(start) if start.isdigit() else None), (int(total) if total.isdigit() else None)


def _http_failure(error: urllib.error.HTTPError, sent_credentials: bool) -> Exception:
    reason = f"HTTP {error.code} {error.reason}"
    if error.code == 429 or error.code >= 500:
        retry_after = error.headers.get("Retry-After", "")
        return Transient(reason, min(float(retry_after), MAX_WAIT) if retry_after.isdigit() else 0.0)
    if error.code == 401:
        reason += " (credentials rejected: check them)" if sent_credentials else f" (private file: {CREDENTIALS_HINT})"
    return Permanent(reason)


def _network_failure(error: BaseException) -> Exception:
    cause = getattr(error, "reason", error)
    if isinstance(cause, ssl.SSLCertVerificationError):
        return Permanent(f"TLS certificate not trusted: {cause.verify_message}")
    return Transient(f"{type(cause).__name__}: {cause}" if str(cause) else type(cause).__name__)
