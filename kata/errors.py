"""The one error type for a person's mistake, in the learning commands and the direct modes alike."""


class UserError(Exception):
    """A mistake in how the course was called or in what it was given: one sentence, and an exit code.

    course.py prints the sentence (no traceback) and exits with `code`: 2 for bad input, as argparse does, and 1
    for a request that cannot be met now (a locked step, a missing lesson).
    """

    def __init__(self, message: str, code: int = 2):
        super().__init__(message)
        self.code = code
