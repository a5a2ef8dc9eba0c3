"""The README's Python examples run as written."""
import re
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def python_blocks():
    return re.findall(r"```python\n(.*?)```", README.read_text(encoding="utf-8"), re.S)


def test_every_python_block_in_the_readme_runs(capsys):
    blocks = python_blocks()
    assert blocks, "the README has no python examples"
    for block in blocks:
        exec(compile(block, str(README), "exec"), {})
    assert "features.0" in capsys.readouterr().out
