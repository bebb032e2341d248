"""The README's Quick start is exactly two commands, and CI runs the second one verbatim."""
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def quick_start_commands():
    text = (ROOT / "README.md").read_text()
    section = text.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```bash\n(.*?)```", section, re.S)
    return [line for b in blocks for line in b.splitlines() if line.strip() and not line.startswith("#")]


def test_quick_start_has_two_commands_demo_and_tests():
    cmds = quick_start_commands()
    assert len(cmds) == 2
    assert "irislib demo" in cmds[0]
    assert "pytest" in cmds[1]
    for c in cmds:  # never pull an unpinned (multi-GB CUDA) torch; reuse an installed one
        assert "torch==" in c and 'python -c "import torch"' in c


def test_ci_runs_the_readme_test_command_verbatim():
    assert quick_start_commands()[1] in (ROOT / ".ci" / "run").read_text()
