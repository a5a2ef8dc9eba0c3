"""The errors a weight file can raise. Both are ValueErrors, so callers that
catch ValueError (the command line does) report them as bad input."""
from contextlib import contextmanager


class WeightFileError(ValueError):
    """A weight file is truncated, corrupted, or in a format numalex cannot read.
    The message names the file and says what was wrong with it."""


class UnsafePickleError(WeightFileError):
    """A pickle asked for a global that is not on the allow-list.

    Nothing the file asked for was imported or called: the unpickler refuses
    the name before Python looks it up. ``global_name`` is ``module.name``.
    """

    def __init__(self, path, global_name: str):
        self.global_name = global_name
        super().__init__(
            f"{path}: refusing to load: the pickle asks for the global {global_name!r}, "
            f"which is not on numalex's allow-list (a state dict only needs "
            f"collections.OrderedDict, torch._utils._rebuild_tensor_v2 and torch.*Storage). "
            f"Nothing from the file was run.")


def _one_line(text: str, limit: int = 300) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[:limit] + " ..."


@contextmanager
def within(part, what: str = "corrupted"):
    """Every failure inside becomes one WeightFileError whose message starts
    with `part` (the file, or a member or blob inside it; nest them).

    A WeightFileError gets `part` put in front; any other exception (a zlib,
    numpy or Unicode error from a corrupted file) becomes "`part`: `what`
    (its type: its message)". An UnsafePickleError already names its file and
    passes through. MemoryError is left alone: the readers never allocate what
    a header merely claims, so one is a bug to see, not bad input to report.
    """
    try:
        yield
    except UnsafePickleError:
        raise
    except WeightFileError as err:
        raise WeightFileError(f"{part}: {_one_line(err)}") from None
    except MemoryError:
        raise
    except Exception as err:        # the file is untrusted: any failure is its fault
        raise WeightFileError(f"{part}: {what} "
                              f"({type(err).__name__}: {_one_line(err)})") from None
