"""Hypothesis strategy for damaged copies of a real file: lines cut, dropped, repeated, swapped, garbage added."""

from __future__ import annotations

from hypothesis import strategies as st

#: pieces that break parsers: separators, quotes, non-numbers, huge numbers, control and non-ASCII characters
GARBAGE = ("", ",", ";", '"', "\t", "nan", "-inf", "1e999", "-1", "x", "\x00", "\u00e9", "\ufeff", "2024-13-45T99:00Z",
           "%", ":", "epoch", "\r")


@st.composite
def damaged(draw: st.DrawFn, text: str) -> str:
    """``text`` with up to 4 damages, each at a drawn line: cut short, dropped, repeated, swapped with the next,
    or a garbage piece inserted at a drawn column; sometimes the file is cut at a drawn byte as well."""
    lines = text.split("\n")
    for _ in range(draw(st.integers(0, 4))):
        if not lines:
            break
        i = draw(st.integers(0, len(lines) - 1))
        kind = draw(st.sampled_from(("cut", "drop", "repeat", "swap", "insert")))
        if kind == "cut":
            lines[i] = lines[i][: draw(st.integers(0, len(lines[i])))]
        elif kind == "drop":
            del lines[i]
        elif kind == "repeat":
            lines.insert(i, lines[i])
        elif kind == "swap" and i + 1 < len(lines):
            lines[i], lines[i + 1] = lines[i + 1], lines[i]
        elif kind == "insert":
            at = draw(st.integers(0, len(lines[i])))
            lines[i] = lines[i][:at] + draw(st.sampled_from(GARBAGE)) + lines[i][at:]
    out = "\n".join(lines)
    if draw(st.booleans()):
        out = out[: draw(st.integers(0, len(out)))]
    return out
