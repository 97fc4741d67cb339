"""The one base class of the errors ccl_core raises for a bad input, so a front end catches them in one place.

Every such error's message is written for the user: it names the file, option or field and what
would be accepted. `USER_ERRORS` is what the command line turns into one `error: ...` line (exit
code 2); anything else is a bug and keeps its traceback.
"""

from __future__ import annotations


class CCLError(Exception):
    """A bad input (file, option, config) with a message that names it and says what would work."""


# ValueError: argument checks in plain functions (seed, steps, prompt words); OSError: the system's
# own file errors (permission denied, disk full), whose messages already name the path.
USER_ERRORS = (CCLError, ValueError, OSError)
