# The Snakemake HTML report: `snakemake --report results/report.html` (make demo does it).
# Its landing page (workflow/report/workflow.rst) shows the run's configuration and the
# summary this rule writes: every evaluation's headline scores side by side, the sweeps'
# best trials, the consistency reports, benchmark figures when present, software versions.
from glob import glob
from pathlib import Path

REPORT_DIR = f"{RESULTS}/report"

# Ariel's ingest reports (files set aside and why); another pipeline adds its consistency
# report to REPORT_CHECKS in its own rule file.
if ARIEL["enabled"]:
    REPORT_CHECKS.extend(f"{ARIEL_DATA}/{d}/ingest_report.json" for d in DATASETS)


report: "../report/workflow.rst"


rule report_summary:
    input:
        # Any target named metrics.json is an evaluation with headline rows; found when the jobs
        # are planned, so whatever the order of the includes every rule file has added its targets.
        metrics=lambda w: [str(f) for f in TARGETS if Path(f).name == "metrics.json"],
        sweeps=[f"{SWEEP_DIR}/{name}/summary.json" for name in SWEEPS],
        overlays=[report(f"{SWEEP_DIR}/{name}/best.yaml", caption="../report/sweep_best.rst", category="Sweeps", subcategory=name) for name in SWEEPS],
        # Consistency reports must be in REPORT_CHECKS before this file is included (the last).
        checks=[report(p, caption="../report/consistency.rst", category="Consistency", subcategory=str(Path(p).parent.relative_to(RESULTS))) for p in REPORT_CHECKS],
        # Saved benchmark output (python benchmarks/NAME.py > results/benchmarks/NAME.json).
        benchmarks=sorted(glob(f"{RESULTS}/benchmarks/*.json")),
    output:
        report(f"{REPORT_DIR}/summary.html", caption="../report/summary.rst", category="Run"),
        report(f"{REPORT_DIR}/headline.tsv", caption="../report/headline.rst", category="Run"),
        landing=f"{REPORT_DIR}/landing.html",
        text=f"{REPORT_DIR}/headline.txt",
    params:
        out=subpath(output.landing, parent=True),
    log:
        f"{LOGS}/report/summary.log",
    conda:
        ENV
    shell:
        "hpcml report --out {params.out:q} --metrics {input.metrics:q} --sweeps {input.sweeps:q} "
        "--checks {input.checks:q} --benchmarks {input.benchmarks:q} > {log:q} 2>&1"


TARGETS.extend(rules.report_summary.output)
