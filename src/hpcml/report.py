"""The run's summary: one page of scores for the report's landing page and ``make demo``.

It reads what the steps wrote and imports no pipeline, like :mod:`hpcml.checks` it sits
above them: every evaluation's headline rows (:mod:`hpcml.core.headline`), each sweep's
``summary.json``, the consistency reports (ingest, pairing: any JSON object), benchmark
JSONs when present, and the versions of the software the run used. It writes

- ``landing.html``: the fragment ``workflow/report/workflow.rst`` puts on the landing page;
- ``summary.html``: the same as a page of its own (full width, in the report's "Run" category);
- ``headline.tsv``: every headline row, for scripts;
- ``headline.txt``: the headline tables as text, which ``make demo`` prints at its end.

Tables put the models of a pipeline side by side, the group's baselines first, and mark
the best value of each metric.
"""
from __future__ import annotations

import argparse
import csv
import html
import io
import json
import platform
import time
from collections import defaultdict
from importlib import metadata
from pathlib import Path
from typing import Any

from hpcml.core.atomic import write_text
from hpcml.core.headline import Headline, read

VERSIONS = ("hpcml", "snakemake", "torch", "pytorch-lightning", "numpy", "pandas", "scikit-learn", "optuna", "wandb")
ARROW = {"higher": "↑", "lower": "↓"}
SHOWN = 5
# Scoped to the fragment, so it reads the same on the landing page and as a page of its own.
STYLE = """<style>
.hpcml-summary table{border-collapse:collapse;margin:.4rem 0 1rem}
.hpcml-summary th,.hpcml-summary td{padding:.25rem .6rem;border-bottom:1px solid #cbd5e1;text-align:right;vertical-align:top}
.hpcml-summary th:first-child,.hpcml-summary td:first-child,.hpcml-summary table.text td{text-align:left}
.hpcml-summary .note{color:#64748b;font-size:.85em}
</style>"""
PAGE = "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>hpcml run summary</title></head>" \
       "<body style=\"font:14px/1.45 system-ui,sans-serif;margin:1.5rem;color:#1e293b\">\n{}</body></html>\n"


def load(path: str | Path) -> Any:
    """A JSON file; one that is not JSON (a benchmark's output saved with its log lines) is named."""
    try:
        return json.loads(Path(path).read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ValueError(f"{path}: not JSON ({error})") from None


def headline_rows(metrics_files: list[Path]) -> list[Headline]:
    """Every headline row of the given metrics.json files, in their order."""
    rows: list[Headline] = []
    for path in metrics_files:
        rows.extend(read(load(path), str(path)))
    return rows


def tables(rows: list[Headline]) -> dict[str, dict[str, Any]]:
    """Per pipeline: its models (baselines first), metrics, values[metric][model] and the best model(s) per metric."""
    out: dict[str, dict[str, Any]] = {}
    for row in rows:
        table = out.setdefault(row.pipeline, {"models": {}, "better": {}, "values": defaultdict(dict)})
        table["models"].setdefault(row.model, row.baseline)
        table["better"][row.metric] = row.better
        table["values"][row.metric][row.model] = row.value
    for table in out.values():
        is_baseline = table["models"]
        table["models"] = {m: is_baseline[m] for m in sorted(is_baseline, key=lambda m: not is_baseline[m])}
        table["best"] = {}
        for metric, values in table["values"].items():
            known = [v for v in values.values() if v is not None]
            pick = max if table["better"][metric] == "higher" else min
            table["best"][metric] = {m for m, v in values.items() if known and v == pick(known)}
    return out


def number(value: float | None) -> str:
    """Four significant digits, whole numbers from 1000 up (challenge scores), "-" for a missing value."""
    if value is None:
        return "-"
    return f"{value:.0f}" if abs(value) >= 1000 else f"{value:.4g}"


def console_table(rows: list[Headline]) -> str:
    """The headline tables as plain text: metrics down, models across; * best, (ref) the group's baseline."""
    if not rows:
        return "No headline scores: no evaluation step ran in this workflow.\n"
    lines = ["Headline scores on held-out data (* best of the row; ref = the group's baseline)"]
    for pipeline, table in tables(rows).items():
        models = list(table["models"])
        header = [pipeline] + [f"{m} (ref)" if table["models"][m] else m for m in models]
        body = [
            [f"{metric} {ARROW[table['better'][metric]]}"]
            + [number(values.get(m)) + ("*" if m in table["best"][metric] else " ") for m in models]
            for metric, values in table["values"].items()
        ]
        widths = [max(len(r[k]) for r in [header, *body]) for k in range(len(header))]
        lines.append("")
        for r in [header, *body]:
            lines.append("  ".join([r[0].ljust(widths[0])] + [c.rjust(w + 1) for c, w in zip(r[1:], widths[1:])]).rstrip())
    return "\n".join(lines) + "\n"


def tsv(rows: list[Headline]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, delimiter="\t", lineterminator="\n")
    writer.writerow(["pipeline", "model", "metric", "value", "better", "baseline"])
    writer.writerows([r.pipeline, r.model, r.metric, "" if r.value is None else repr(r.value), r.better, r.baseline] for r in rows)
    return out.getvalue()


def sweep_summaries(paths: list[Path]) -> list[dict[str, Any]]:
    """Each sweep's best trial, from the summary.json that ``hpcml sweep results`` wrote."""
    out = []
    for path in paths:
        summary = load(path)
        best = summary["best"]
        out.append({"sweep": summary["sweep"], "model": f"{summary['rule']} {summary['model']}", "method": summary["method"],
                    "trials": summary["trials"], "metric": f"{summary['metric']} {ARROW['higher' if summary['goal'] == 'maximize' else 'lower']}",
                    "best": best[summary["metric"]], "parameters": best["parameters"], "overlay": str(Path(path).with_name("best.yaml"))})
    return out


def flatten(data: Any, prefix: str = "") -> dict[str, Any]:
    """Nested JSON as dotted keys; a list counts its items (a report lists what it set aside)."""
    if isinstance(data, dict):
        return {k: v for key, value in data.items() for k, v in flatten(value, f"{prefix}{key}.").items()}
    return {prefix.rstrip("."): len(data) if isinstance(data, list) else data}


def problems(data: Any) -> list[str]:
    """The listed problems of a consistency report: entries that name a file and an error, anywhere in it."""
    if isinstance(data, dict):
        if "error" in data:
            return [f"{data.get('file', '?')}: {data['error']}"]
        return [p for value in data.values() for p in problems(value)]
    if isinstance(data, list):
        return [p for item in data for p in problems(item)]
    return []


def check_summaries(paths: list[Path]) -> list[dict[str, Any]]:
    out = []
    for path in paths:
        data = load(path)
        out.append({"path": str(path), "figures": flatten(data), "problems": problems(data)})
    return out


def versions() -> dict[str, str]:
    """The software this summary ran with: Python, the platform and the packages installed (those that are)."""
    found = {"python": platform.python_version(), "platform": platform.platform(terse=True)}
    for name in VERSIONS:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return found


def _cell(text: Any, tag: str = "td", cls: str = "") -> str:
    attr = f' class="{cls}"' if cls else ""
    return f"<{tag}{attr}>{html.escape(str(text))}</{tag}>"


def _pairs(figures: dict[str, Any]) -> str:
    return " · ".join(f"{html.escape(str(k))} <b>{html.escape(number(v) if isinstance(v, float) else str(v))}</b>" for k, v in figures.items())


def _headline_html(rows: list[Headline]) -> list[str]:
    if not rows:
        return ["<h2>Headline scores</h2><p>No evaluation step ran in this workflow, so there are no scores.</p>"]
    parts = ["<h2>Headline scores</h2><p class=\"note\">On held-out data. Bold: the best of the row; <i>ref</i>: the group's "
             "baseline, the model to beat; ↑ higher is better, ↓ lower is better.</p>"]
    for pipeline, table in tables(rows).items():
        header = "<th></th>" + "".join(f"<th>{html.escape(m)}{' <i>ref</i>' if ref else ''}</th>" for m, ref in table["models"].items())
        body = "".join(
            "<tr>" + _cell(f"{metric} {ARROW[table['better'][metric]]}")
            + "".join(f"<td><b>{number(values.get(m))}</b></td>" if m in table["best"][metric] else _cell(number(values.get(m))) for m in table["models"])
            + "</tr>"
            for metric, values in table["values"].items()
        )
        parts.append(f"<h3>{html.escape(pipeline)}</h3><table><thead><tr>{header}</tr></thead><tbody>{body}</tbody></table>")
    return parts


def _sweeps_html(sweeps: list[dict[str, Any]]) -> list[str]:
    if not sweeps:
        return []
    head = "".join(_cell(h, "th") for h in ("sweep", "trains", "method", "trials", "metric", "best", "with"))
    body = "".join(
        "<tr>" + "".join(_cell(v) for v in (s["sweep"], s["model"], s["method"], s["trials"], s["metric"], number(s["best"]),
                                           ", ".join(f"{p}={v}" for p, v in s["parameters"].items()))) + "</tr>"
        for s in sweeps
    )
    overlays = ", ".join(html.escape(s["overlay"]) for s in sweeps)
    return [f"<h2>Sweeps</h2><table class=\"text\"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"
            f"<p class=\"note\">The best configurations are config overlays for <code>--configfile</code>: {overlays}.</p>"]


def _checks_html(checks: list[dict[str, Any]]) -> list[str]:
    if not checks:
        return []
    items = []
    for c in checks:
        listed = "".join(f"<li>{html.escape(p)}</li>" for p in c["problems"][:SHOWN])
        if len(c["problems"]) > SHOWN:
            listed += f"<li>... and {len(c['problems']) - SHOWN} more (see the file)</li>"
        items.append(f"<li>{html.escape(c['path'])}: {_pairs(c['figures'])}" + (f"<ul>{listed}</ul>" if listed else "") + "</li>")
    return ["<h2>Consistency reports</h2><ul>" + "".join(items) + "</ul>"]


def landing_fragment(rows: list[Headline], sweeps: list[dict[str, Any]], checks: list[dict[str, Any]],
                     benchmarks: dict[str, dict[str, Any]], found: dict[str, str]) -> str:
    """The landing page's HTML: headline tables, sweeps, consistency reports, benchmarks, versions."""
    parts = [STYLE, "<div class=\"hpcml-summary\">", *_headline_html(rows), *_sweeps_html(sweeps), *_checks_html(checks)]
    if benchmarks:
        parts.append("<h2>Benchmarks</h2>" + "".join(f"<p>{html.escape(name)}: {_pairs(figures)}</p>" for name, figures in benchmarks.items()))
    parts.append(f"<h2>Software</h2><p>{_pairs(found)}</p><p class=\"note\">Summary written {html.escape(time.strftime('%Y-%m-%d %H:%M %Z'))}.</p></div>")
    return "\n".join(parts) + "\n"


def write_summary(out_dir: str | Path, metrics: list[Path], sweeps: list[Path], checks: list[Path], benchmarks: list[Path]) -> list[Headline]:
    out_dir = Path(out_dir)
    rows = headline_rows(metrics)
    bench = {str(p): flatten(load(p)) for p in benchmarks}
    fragment = landing_fragment(rows, sweep_summaries(sweeps), check_summaries(checks), bench, versions())
    write_text(out_dir / "landing.html", fragment)
    write_text(out_dir / "summary.html", PAGE.format(fragment))
    write_text(out_dir / "headline.tsv", tsv(rows))
    write_text(out_dir / "headline.txt", console_table(rows))
    return rows


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("report", help="the run's summary for the report's landing page: headline scores, sweeps, checks, versions",
                            description="Collect what the steps wrote into the landing page of the Snakemake report and a console table.")
    parser.add_argument("--out", type=Path, required=True, help="folder for landing.html, summary.html, headline.tsv, headline.txt")
    parser.add_argument("--metrics", type=Path, nargs="*", default=[], help="evaluation metrics.json files (their headline rows)")
    parser.add_argument("--sweeps", type=Path, nargs="*", default=[], help="sweep summary.json files")
    parser.add_argument("--checks", type=Path, nargs="*", default=[], help="consistency reports (JSON)")
    parser.add_argument("--benchmarks", type=Path, nargs="*", default=[], help="benchmark results (JSON)")
    parser.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> None:
    rows = write_summary(args.out, args.metrics, args.sweeps, args.checks, args.benchmarks)
    print(console_table(rows), end="")
