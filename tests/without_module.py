"""Run numalex in a fresh Python in which an optional package is missing."""
import subprocess
import sys


def import_error_without(module: str, statement: str) -> str:
    """The message of the ImportError that `statement` raises in a fresh
    interpreter where `module` cannot be imported ('' if it raises none).
    Setting sys.modules[module] = None makes every `import module` fail,
    which is how a machine without the package behaves."""
    script = (f"import sys; sys.modules[{module!r}] = None\n"
              f"try:\n    {statement}\n"
              f"except ImportError as err:\n    print(err)\n")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=120, check=True)
    return done.stdout
