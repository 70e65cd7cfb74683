"""The one exception type that means "the user gave us something we cannot use".

Everything a person can get wrong (a file, an edit spec, a CSV, a flag, a missing
checkpoint while offline) raises :class:`UserError` with a single sentence that says
what is wrong and what to do. The CLI prints it and exits with status 2; the Gradio app
turns it into ``gr.Error``. Anything else is a bug and keeps its traceback.
"""

from __future__ import annotations


class UserError(Exception):
    """A one-sentence, user-facing error. ``str(err)`` is what the person reads."""

    exit_code = 2

    def __init__(self, message: str) -> None:
        message = " ".join(str(message).split())  # always one line
        super().__init__(message)
