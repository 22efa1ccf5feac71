"""The one exception type of the toolkit: bad input a user can fix, reported as one clear line."""


class DeployError(Exception):
    """A user-facing error: the message names the file or value and the problem.

    The CLI prints it as one line on stderr and exits with code 2.
    """
