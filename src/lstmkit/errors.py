"""User-facing errors.

`LstmkitError` is raised for anything a user can fix (a bad file, a missing
column, a series too short, an unreadable model directory). Its message is one
line that says what was expected, what was found and what to do; the CLI
prints it as ``error: <message>`` and exits with status 2, without a
traceback.
"""


class LstmkitError(ValueError):
    """An error caused by the user's input, with a message that says how to fix it."""
