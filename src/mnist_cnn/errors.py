"""The one exception type for mistakes a user can make and fix."""


class MnistCnnError(Exception):
    """A problem caused by input the user controls (a file, a path, a flag).

    The CLI prints its message on one line and exits with status 2, no traceback:
    the message itself must say what is wrong and what to do about it.
    """


def install_hint(extra: str) -> str:
    """How to add an optional part of the package (an extra of pyproject.toml)."""
    return f"pip install 'mnist-cnn[{extra}]'"


class ImageError(MnistCnnError):
    """A file that cannot be read as a digit: not an image, broken, too big, or blank."""
