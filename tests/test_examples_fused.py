"""The character-level language model example trains with linear_cross_entropy."""

import re


def test_char_lm_quick_run_learns_plots_and_generates(run_example, tmp_path):
    out = tmp_path / "loss.png"
    stdout = run_example("char_lm.py", "--quick", "--out", str(out))
    first = float(re.search(r"first loss\s+([\d.]+)", stdout).group(1))
    final = float(re.search(r"final loss\s+([\d.]+)", stdout).group(1))
    held = re.search(r"held-out loss ([\d.]+) -> ([\d.]+)", stdout)
    assert final < first - 0.5, stdout
    assert float(held.group(2)) < float(held.group(1)), stdout
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    generated = stdout.split("generated:\n", 1)[1].splitlines()
    assert generated and generated[0].startswith("  | def ")
    assert sum(len(line) for line in generated) > 100
