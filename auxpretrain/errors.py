"""Exception types. Every error a user can cause is an `AuxPretrainError` whose message is
one line saying which file, line, column or variable is wrong and what to do; the CLI prints
it as `auxpretrain: error: <message>` and exits with status 2."""


class AuxPretrainError(Exception):
    """Base class of user-facing errors (bad input, mismatched exports, bad configs)."""


class ConfigError(AuxPretrainError, ValueError):
    """An unknown key or invalid value in a configuration."""


class InputError(AuxPretrainError, ValueError):
    """A corpus or task file that cannot be used (missing, empty, binary, wrong column...)."""


class ExportError(AuxPretrainError):
    """An export directory that is missing, incomplete, corrupted or of another format."""


class RestoreError(AuxPretrainError):
    """A restore that cannot be done as asked (missing or mis-shaped variables...)."""


class NotFittedError(AuxPretrainError, RuntimeError):
    """A model method that needs training was called before `fit`."""
