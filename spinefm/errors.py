"""The error a user's mistake raises (a wrong path, a damaged file, a setting that cannot work): the
entry points (`spinefm.cli`) tell it in one line, exit status 2. It imports nothing, so any layer
may raise it."""


class UserError(ValueError):
    """A mistake in what was asked for, told in one line: what is wrong, with which file or setting, and
    what to do. A ValueError, for the callers that catch those."""
