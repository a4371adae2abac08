"""The project's named exceptions. All user-facing errors derive from :class:`UsageError`.

The CLI turns a :class:`UsageError` into a one-line message and exit code 2; anything else is a
bug and keeps its traceback.
"""

from __future__ import annotations


class UsageError(Exception):
    """Bad input from the user: an unknown op, a malformed shape, a broken YAML file..."""


class ConfigFileError(UsageError):
    """A YAML file (search space, rules, hardware) that does not parse or breaks its schema."""


class ExpressionError(ConfigFileError):
    """A constraint expression that is malformed, unsafe or names unknown variables."""


class NoFeasibleConfigError(UsageError):
    """The constraints leave no configuration of any structure to try."""
