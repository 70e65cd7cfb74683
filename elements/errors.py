"""The one exception type that means "the user gave us something we cannot use".

Everything a person can get wrong (a file, an edit spec, a CSV, a flag, a missing
checkpoint while offline) raises :class:`UserError` with a single sentence that says
what is wrong and what to do. The CLI prints it and exits with status 2; the Gradio app
turns it into ``gr.Error``. Anything else is a bug and keeps its traceback.

An error about one edit of a spec carries structured fields (``edit_index``, ``op``,
``message``) so that each front end words it for its reader: the CLI prints
``Edit 2 (move): Unknown element id 300 ...``, the demo (where a click is one edit) shows
only the message. Untrusted values are quoted only through :func:`excerpt`.
"""

from __future__ import annotations

import re

_UNSAFE = re.compile(r"[^A-Za-z0-9 _.,:+\-/()]")


def excerpt(value, limit: int = 24) -> str:
    """A short, sanitised, quoted rendering of an untrusted value for an error sentence.

    Keeps letters, digits and a few punctuation marks, cuts to ``limit`` characters with an
    ellipsis; numbers are shown as numbers (huge integers abbreviated). Never the whole value.
    """
    if isinstance(value, bool) or value is None:
        return repr(value)
    if isinstance(value, int):
        text = str(value) if abs(value) < 10**15 else f"an integer of {len(str(abs(value)))} digits"
        return text
    if isinstance(value, float):
        return repr(value) if len(repr(value)) <= limit else f"{value:.6g}"
    if not isinstance(value, str):
        return f"a {type(value).__name__}"
    clean = _UNSAFE.sub("?", value)
    if len(clean) > limit:
        clean = clean[: limit - 1] + "…"
    return f"'{clean}'"


class UserError(Exception):
    """A one-sentence, user-facing error. ``str(err)`` is what the person reads.

    ``edit_index`` (1-based) and ``op`` name the spec edit the error is about, or are None;
    ``message`` is the sentence without the ``Edit i (op): `` prefix.
    """

    exit_code = 2

    def __init__(self, message: str, *, edit_index: int | None = None, op: str | None = None) -> None:
        self.message = " ".join(str(message).split())  # always one line
        self.edit_index = edit_index
        self.op = op if op is None else str(op)[:16]
        super().__init__(self._text())

    def _text(self) -> str:
        if self.edit_index is None:
            return self.message
        where = f"Edit {self.edit_index}" + (f" ({self.op})" if self.op else "")
        return f"{where}: {self.message}"

    def for_edit(self, edit_index: int, op: str | None) -> UserError:
        """The same error, attributed to edit ``edit_index`` (keeps an index already set)."""
        if self.edit_index is not None:
            return self
        return UserError(self.message, edit_index=edit_index, op=op)


__all__ = ["UserError", "excerpt"]
