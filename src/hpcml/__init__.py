"""hpcml: workflows that take ML-for-science pipelines from raw data to reports."""

__version__ = "0.1.0"
