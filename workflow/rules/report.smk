# The Snakemake HTML report: `snakemake --report results/report.html` (make demo does it).
report: "../report/workflow.rst"
