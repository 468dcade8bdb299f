"""Exceptions a user can act on. The CLI turns each into one line and a non-zero exit."""


class AbstainError(Exception):
    """Base class of every error abstain raises on purpose."""


class InputError(AbstainError, ValueError):
    """The input (array, image, file, option) is not what the command needs."""


class DataError(AbstainError):
    """A dataset could not be found, or a file of it is corrupt or truncated."""


class NotFittedError(AbstainError, AttributeError):
    """A detector or guard was used before `fit`."""


class RunError(AbstainError):
    """A run directory is missing, incomplete, or from another version of abstain."""
