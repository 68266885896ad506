"""The marker of a user error (a leaf module): an exception class that also derives from :class:`UserError` is
reported by ``moviead`` as one ``error:`` line with exit code 2 (a traceback only with ``--debug``), whatever its
other base (``OSError``, ``RuntimeError``, ``UnpicklingError`` ...)."""


class UserError(Exception):
    """Mixed into exceptions that a user causes and can fix (a missing optional dependency, an unwritable folder)."""
