"""The errors a weight file can raise. Both are ValueErrors, so callers that
catch ValueError (the command line does) report them as bad input."""


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
