"""The character-level language model example trains with linear_cross_entropy."""

import pathlib
import re
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parents[1]


def test_char_lm_quick_run_learns_plots_and_generates(tmp_path):
    out = tmp_path / "loss.png"
    proc = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "char_lm.py"), "--quick", "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=ROOT,
    )
    assert proc.returncode == 0, proc.stderr
    first = float(re.search(r"first loss\s+([\d.]+)", proc.stdout).group(1))
    final = float(re.search(r"final loss\s+([\d.]+)", proc.stdout).group(1))
    held = re.search(r"held-out loss ([\d.]+) -> ([\d.]+)", proc.stdout)
    assert final < first - 0.5, proc.stdout
    assert float(held.group(2)) < float(held.group(1)), proc.stdout
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    generated = proc.stdout.split("generated:\n", 1)[1].splitlines()
    assert generated and generated[0].startswith("  | def ")
    assert sum(len(line) for line in generated) > 100
