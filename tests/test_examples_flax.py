"""The Flax examples run (quick mode) and print what they promise."""

import re

ROW = re.compile(r"^(balanced|imbalanced)\s+(.+?)\s+(\d\.\d{4})\s+(\d\.\d{4})\s+(\d\.\d{4})$")
LOSSES = {"cross-entropy", "label smoothing 0.1", "focal gamma=2", "class weights"}


def test_train_digits_quick_prints_the_table_and_writes_the_png(run_example, tmp_path):
    out = run_example("train_digits.py", "--quick", "--out", str(tmp_path))
    rows = [m.groups() for m in map(ROW.match, out.splitlines()) if m]
    assert {(setting, name) for setting, name, *_ in rows} == {
        (s, n) for s in ("balanced", "imbalanced") for n in LOSSES
    }
    for setting, name, accuracy, macro_f1, rare_recall in rows:
        assert float(accuracy) > 0.5, (setting, name, accuracy)  # chance is 0.1
        assert 0.0 < float(macro_f1) <= 1.0 and 0.0 <= float(rare_recall) <= 1.0
    png = tmp_path / "train_digits.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000
    assert f"wrote {png}" in out


def test_per_example_gradients_quick_clips_and_learns(run_example):
    out = run_example("per_example_gradients.py", "--quick", "--clip", "1.0")
    gap = float(re.search(r"max \|diff\| = (\S+)", out).group(1))
    assert gap < 1e-5  # the mean of the per-example gradients is the batch gradient
    epochs = re.findall(r"^\s+\d+\s+([\d.]+) /\s+([\d.]+)\s+([\d.]+)\s+([\d.]+)$", out, re.M)
    assert len(epochs) == 3
    for median, largest, clipped, _ in epochs:
        assert float(clipped) <= 1.0 + 1e-4  # every per-example norm is clipped to 1
        assert float(largest) > 1.0 and float(median) <= float(largest)  # clipping did bite
    before = float(re.search(r"accuracy before training: ([\d.]+)", out).group(1))
    after = float(re.search(r"accuracy after training: ([\d.]+)", out).group(1))
    assert before < 0.3 and after > 0.5
