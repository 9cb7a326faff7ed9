"""Self-contained HTML report of all analyses.

See :func:`metapool.report.render.render_report`.
"""

from metapool.report.render import render_report, write_report

__all__ = ["render_report", "write_report"]
