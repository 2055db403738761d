"""The errors and warnings socialcredit raises, in one place.

Every error subclasses a builtin as well, so code that catches ``ValueError``
keeps working. A :class:`ScenarioError` names the field (``path``), the value
received, the rule it broke and what to do instead (``hint``).
"""

from __future__ import annotations


class SocialCreditError(Exception):
    """Base class of every error raised by socialcredit."""


class ScenarioError(SocialCreditError, ValueError):
    """A scenario file or override is invalid.

    Parameters
    ----------
    path : str
        Dotted path of the offending field, e.g. ``agencies[3].coverage``.
    value : object
        The value received.
    rule : str
        The rule it broke, e.g. ``must be <= 1``.
    hint : str
        What to do instead.
    """

    def __init__(self, path: str, value: object, rule: str, hint: str = ""):
        self.path = path
        self.value = value
        self.rule = rule
        self.hint = hint
        message = f"{path or '<scenario>'}: {rule} (got {value!r})"
        if hint:
            message += f". Fix: {hint}"
        super().__init__(message)


class ScenarioErrors(ScenarioError):
    """Several scenario errors at once; ``errors`` holds each of them."""

    def __init__(self, errors: list[ScenarioError]):
        self.errors = errors
        first = errors[0]
        super().__init__(first.path, first.value, first.rule, first.hint)
        if len(errors) > 1:
            lines = "\n  ".join(str(e) for e in errors)
            self.args = (f"{len(errors)} problems in the scenario:\n  {lines}",)


class ResourceError(SocialCreditError, MemoryError):
    """A run would not fit in this machine's memory; raised before it starts."""


class RunFolderError(SocialCreditError, FileExistsError):
    """A run folder exists already, or is not a complete run folder."""


class ResumeError(SocialCreditError, RuntimeError):
    """A run or sweep cannot be resumed from what is on disk."""


class QueryError(SocialCreditError, ValueError):
    """The SQL failed: a syntax error, an unknown view or column, or a refused write."""


class CalibrationWarning(UserWarning):
    """A scenario uses a number whose source is marked unverified or claim."""
