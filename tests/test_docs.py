"""`python -m dpo_exp.docs`: every config key documented once, in its schema, and README's reference current."""

from __future__ import annotations

import dataclasses
import subprocess
import sys

import pytest

from conftest import REPO
from dpo_exp import docs


@pytest.mark.parametrize("command", docs.commands(), ids=lambda c: c.command)
def test_every_schema_field_has_help(command):
    assert docs.undocumented(command.schema) == [], (
        "config fields without a description: give each field(..., metadata={'help': '...'})")


@dataclasses.dataclass
class Inner:
    documented: int = dataclasses.field(default=1, metadata={"help": "a number"})
    bare: int = 2


@dataclasses.dataclass
class Outer:
    inner: Inner = dataclasses.field(default_factory=Inner, metadata={"help": "nested"})


def test_a_field_without_help_is_found():
    assert [k.split(" ")[0] for k in docs.undocumented(Outer)] == ["inner.bare"]


def test_readme_config_reference_is_current():
    """Fails when a schema, a default or a preset changed without `python -m dpo_exp.docs`."""
    result = subprocess.run([sys.executable, "-m", "dpo_exp.docs", "--check"], cwd=REPO, capture_output=True,
                            text=True, env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"}, timeout=300)
    assert result.returncode == 0, f"{result.stderr}\n{result.stdout[-4000:]}"


def test_check_reports_a_stale_reference_and_the_generator_only_touches_the_markers(tmp_path, capsys):
    readme = tmp_path / "README.md"
    readme.write_text(f"# Title\n\nkept as written\n\n{docs.BEGIN}\n| old | table |\n{docs.END}\n\n## After\nkept too\n")

    assert docs.main(["--check", "--readme", str(readme)]) == 1
    out = capsys.readouterr()
    assert "-| old | table |" in out.out and "+| `model.name` | str | `smollm2-135m` |" in out.out
    assert "config reference is stale. Fix: python -m dpo_exp.docs" in out.err

    assert docs.main(["--readme", str(readme)]) == 0
    text = readme.read_text()
    assert text.startswith("# Title\n\nkept as written\n\n" + docs.BEGIN + "\n")
    assert text.endswith(docs.END + "\n\n## After\nkept too\n") and "| old | table |" not in text
    assert "| `build.n` | int | `4` |" in text and "| `out.flatten` | bool | `false` |" in text
    assert docs.main(["--check", "--readme", str(readme)]) == 0


def test_missing_markers_are_a_clear_error(tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text("# no markers\n")
    with pytest.raises(SystemExit, match="needs exactly one line"):
        docs.main(["--readme", str(readme)])


def test_the_reference_lists_each_group_s_presets_and_types():
    text = docs.render()
    assert "Presets (`beta=NAME`, files in `conf/beta/`):\n\n- `default` (default): beta = 0.1\n- `high`: beta = 0.5\n" in text
    assert "- `tiny`: A randomly initialised small Llama" in text  # each preset's first comment sentence
    assert "| `loss.type` | sigmoid \\| ipo \\|" in text  # an enum's values, escaped for the table
    assert "| `data.max_rows` | int or null | `null` |" in text
    assert "`+experiment=NAME`" in text and "`sycophancy_facts`" in text
    # eval's own keys, not training's again
    evaluation = text.split("### Evaluation")[1].split("### ")[0]
    assert "| `eval_models` |" in evaluation and "| `model.name` |" not in evaluation
