"""What the packaging cases share: registration, Skipped, the build folder."""
import os

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
ARGS = {"build": os.path.join(REPO, "build"), "deb": ""}
CASES = []


class Skipped(Exception):
    """Raised by a case that could not run here: reported as skipped, never as passed."""


def case(fn):
    CASES.append((fn.__name__, fn))
    return fn


def expect(cond, msg):
    if not cond:
        raise AssertionError(msg)


def build_file(*parts):
    return os.path.join(ARGS["build"], *parts)


def sessiond_bin():
    """The sanitizer build when there is one (make test builds it), else the plain one."""
    asan = build_file("asan", "sessiond")
    return asan if os.path.exists(asan) else build_file("sessiond")
