"""The project's error types.

:class:`UserError` marks a mistake in what a user passed (an argument, a
config value, a flag, a file): the binaries print its message in one line and
exit with status 2. Anything else is a bug and keeps its traceback.
"""


class UserError(ValueError):
  """A bad argument, config value, flag or file; the message names it and
  its value. A ``ValueError``, so ``except ValueError`` still catches it."""
