"""The one error type for users' mistakes."""


class NmtError(Exception):
    """Bad input from a user (a file, a config, a request).

    The CLI prints the message, without a traceback, and exits with status 1. The message names
    the file, line or key at fault.
    """
