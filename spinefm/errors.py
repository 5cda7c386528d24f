"""The error a user's mistake raises (a wrong path, a damaged file, a setting that cannot work): the
entry points (`spinefm.cli`) tell it in one line, exit status 2; and `reason`, an exception in a
few words for such a line. It imports nothing, so any layer may use it."""


class UserError(ValueError):
    """A mistake in what was asked for, told in one line: what is wrong, with which file or setting, and
    what to do. A ValueError, for the callers that catch those."""


def reason(error: BaseException, first_sentence: bool = False) -> str:
    """An exception in a few words for a one-line message: its type and its message's first line (or
    first sentence: torch's run to paragraphs)."""
    lines = str(error).strip().splitlines()
    text = lines[0].strip() if lines else ""
    if first_sentence:
        text = text.split(". ")[0].rstrip(".")
    if len(text) > 200:
        text = text[:197] + "..."
    return f"{type(error).__name__}: {text}" if text else type(error).__name__
