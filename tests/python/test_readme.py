"""The README's Python example runs as written (so it cannot rot)."""

import pathlib
import re

README = pathlib.Path(__file__).resolve().parents[2] / "README.md"


def test_readme_python_example_runs(capsys):
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)
    assert blocks, "README.md has no python example"
    namespace: dict = {}
    exec(compile(blocks[0], str(README), "exec"), namespace)  # noqa: S102 - our own README
    manager = namespace["manager"]
    assert namespace["plan"].ok
    assert namespace["new_pages"] == [[1, 2, 3]]
    assert manager.page_pool.get_num_free_pages() == 1023
    manager.verify()
    assert capsys.readouterr().out.startswith("1023 [")


def test_readme_scheduler_example_runs(capsys):
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)
    block = next(b for b in blocks if "pagedkv.Scheduler(" in b)
    namespace: dict = {}
    exec(compile(block, str(README), "exec"), namespace)  # noqa: S102 - our own README
    assert capsys.readouterr().out.strip() == "length 255"
    namespace["sched"].verify()


def test_readme_engine_example_runs(capsys):
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)
    block = next(b for b in blocks if "pagedkv.LLMEngine(" in b)
    namespace: dict = {}
    exec(compile(block, str(README), "exec"), namespace)  # noqa: S102 - our own README
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[-1] == "16 255"
    assert lines[0].startswith("generate-0-0 [") and "length" in lines[0]
    namespace["engine"].verify()
