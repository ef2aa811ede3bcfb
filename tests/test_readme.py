"""The README's quickstart must really run."""

import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"


def _python_blocks():
    return re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)


@pytest.mark.parametrize("index", range(len(_python_blocks())))
def test_readme_python_blocks_run(index, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    code = _python_blocks()[index]
    exec(compile(code, f"README.md[python block {index}]", "exec"), {"__name__": "__readme__"})


def test_readme_quickstart_is_short():
    first = _python_blocks()[0]
    assert len(first.strip().splitlines()) <= 20
