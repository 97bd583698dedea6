"""Divergences of the fake from Linux that the replay knows about, each with its reason.

A key is a divergence kind as test_replay.signature spells it; the replay passes when every
diverging sequence's first differing op is of a listed kind, and fails on any other.  Every
entry is a fake bug not understood or not fixed yet: the list only shrinks.
"""

from __future__ import annotations

KNOWN: dict[str, str] = {
}
