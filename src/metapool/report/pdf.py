"""The report as a PDF: the same HTML page laid out by WeasyPrint.

WeasyPrint (pip ``weasyprint``, installed with ``pip install -e '.[pdf]'``) is pure
Python on top of the system's Pango library (Debian: ``libpango-1.0-0`` and
``libpangoft2-1.0-0``; ``scripts/install_browser.sh --pdf`` installs them when missing).
The page's print stylesheet (A4, page breaks, collapsible tables expanded) applies.

Nothing is fetched: the report holds its figures as ``data:`` URIs and the URL fetcher
here allows no other scheme and stops on any failed load, so a stray reference fails the
build instead of reaching the network or leaving a hole in the PDF.

The output is deterministic: WeasyPrint writes no creation date and no random document
id, and the PDF's title comes from the page's ``<title>``; the same HTML gives the same
bytes (tests/test_report.py checks it).
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["PDFError", "render_pdf", "write_pdf"]


class PDFError(RuntimeError):
    """The PDF cannot be made (WeasyPrint or its system libraries are missing)."""


_INSTALL_HINT = (
    "The PDF report needs WeasyPrint and the Pango library: "
    "`pip install -c constraints.txt -e '.[pdf]'` and, on Debian/Ubuntu, "
    "`bash scripts/install_browser.sh --pdf` (installs libpango-1.0-0 and "
    "libpangoft2-1.0-0 with apt-get when missing)."
)


def _weasyprint():
    """Import WeasyPrint, or raise PDFError saying how to install it."""
    try:
        import weasyprint
    except (ImportError, OSError) as error:  # OSError: libpango not found
        raise PDFError(f"{_INSTALL_HINT} ({type(error).__name__}: {error})") from error
    return weasyprint


def _fetcher(weasyprint):
    """A URL fetcher that serves ``data:`` URIs only and stops the layout on any other
    URL (or a broken ``data:`` URI) instead of leaving a hole in the PDF."""
    from weasyprint.urls import URLFetcher

    return URLFetcher(allowed_protocols=("data",), fail_on_errors=True)


def render_pdf(html: str) -> bytes:
    """Lay out report HTML (text) as PDF bytes.

    Parameters
    ----------
    html : str
        The report page (:func:`metapool.report.render_report`).

    Returns
    -------
    bytes
        The PDF.

    Raises
    ------
    PDFError
        When WeasyPrint or Pango is not installed, or the page refers to anything but a
        ``data:`` URI (nothing is fetched).
    """
    weasyprint = _weasyprint()
    from weasyprint.urls import FatalURLFetchingError

    try:
        document = weasyprint.HTML(string=html, url_fetcher=_fetcher(weasyprint),
                                   base_url=None)
        return document.write_pdf()
    except FatalURLFetchingError as error:  # a BaseException in WeasyPrint
        cause = f": {error.__cause__}" if error.__cause__ else ""
        raise PDFError(f"the report refers to something outside itself ({error}{cause})"
                       ) from None


def write_pdf(html_path: str | os.PathLike[str], out_path: str | os.PathLike[str]) -> Path:
    """Write the PDF of a report HTML file.

    Parameters
    ----------
    html_path : path-like
        ``results/report.html``.
    out_path : path-like
        ``results/report.pdf``; parent directories are created.

    Returns
    -------
    pathlib.Path
        The written path.
    """
    data = render_pdf(Path(html_path).read_text(encoding="utf-8"))
    out = Path(out_path)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, out)
    return out
