"""The CTC example runs (quick mode), reads held-out strips far better than chance."""

import pathlib
import re
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parents[1]


def test_ctc_digits_quick_reads_held_out_strips(tmp_path):
    proc = subprocess.run(
        [
            sys.executable,
            str(ROOT / "examples" / "ctc_digits.py"),
            "--quick",
            "--out",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=ROOT,
    )
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    rows = re.findall(r"^(greedy|beam \(K=8\))\s+(\d\.\d{4})\s+(\d\.\d{4})$", out, re.M)
    assert [name for name, *_ in rows] == ["greedy", "beam (K=8)"], out
    for name, accuracy, cer in rows:
        # chance: no strip of 3-6 digits read exactly, a character error rate near 0.9
        assert float(accuracy) > 0.05 and float(cer) < 0.6, (name, accuracy, cer)
    png = tmp_path / "ctc_digits.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000
    assert f"wrote {png}" in out
