"""A griffe extension for the docs build: Sphinx roles in docstrings become code spans.

pyvfio's docstrings cross-reference with Sphinx roles (:class:`Container`, :meth:`map`), which
Markdown would show verbatim; this shows ``Container`` and ``map()`` as code instead.
(``~pyvfio.dma.Mapping`` shows its last component, as Sphinx does.)
"""

from __future__ import annotations

import re
from typing import Any

import griffe

ROLE = re.compile(r":(?:py:)?(class|meth|func|attr|data|mod|exc|obj|const):`(~?)([^`]+)`")


def _code(m: re.Match[str]) -> str:
    role, short, target = m.groups()
    target = target.strip()
    if short:
        target = target.rsplit(".", 1)[-1]
    if role in ("meth", "func") and not target.endswith(")"):
        target += "()"
    return f"`{target}`"


def plain(text: str) -> str:
    """Return ``text`` with every Sphinx role replaced by a Markdown code span."""
    return ROLE.sub(_code, text)


class SphinxRoles(griffe.Extension):
    """Rewrite the roles of every docstring griffe loads."""

    def on_instance(self, *, obj: griffe.Object, **kwargs: Any) -> None:
        if obj.docstring is not None:
            obj.docstring.value = plain(obj.docstring.value)
