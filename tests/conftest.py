"""Test-wide settings.

* The CUDA backend runs in Numba's CUDA simulator unless the caller says
  otherwise: the variable must be set before numba is first imported, so it
  is set here, at the very top. On a machine with a GPU, run
  `NUMBA_ENABLE_CUDASIM=0 python -m pytest` to test the real device.
* Hypothesis: JIT compilation is not a test failure, so no deadline. The
  `ci` profile (chosen when the CI variable is set) is derandomised and runs
  more examples; `dev` is quick. HYPOTHESIS_PROFILE overrides both.
"""
import os

os.environ.setdefault("NUMBA_ENABLE_CUDASIM", "1")

from hypothesis import HealthCheck, settings  # noqa: E402

settings.register_profile("dev", max_examples=25, deadline=None)
settings.register_profile("ci", max_examples=60, deadline=None, derandomize=True,
                          print_blob=True, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE",
                                     "ci" if os.environ.get("CI") else "dev"))
