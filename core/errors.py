"""The one exception family the library raises for bad input.

Every error a person can act on is an :class:`ExplorerError` (a ``ValueError``) whose message names the
file or object and the problem. The UI shows these as messages, never as tracebacks.
"""


class ExplorerError(ValueError):
    """Base class of all user-actionable errors raised by ``core``."""
