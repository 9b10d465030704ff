"""The contrastive example runs (quick mode) on 8 simulated devices and learns."""

import re


def test_contrastive_digits_quick_matches_one_device_learns_and_writes_the_png(
    run_example, tmp_path
):
    out = run_example("contrastive_digits.py", "--quick", "--out", str(tmp_path))
    gaps = re.findall(r"^(clip|siglip): sharded vs one-device .* = (\S+)$", out, re.M)
    assert {loss for loss, _ in gaps} == {"clip", "siglip"}
    assert all(float(gap) < 1e-4 for _, gap in gaps), gaps
    rows = re.findall(r"^(clip|siglip)\s+([\d.]+)\s+([\d.]+)\s+([\d.]+)$", out, re.M)
    assert {loss for loss, *_ in rows} == {"clip", "siglip"}
    for loss, first, last, top1 in rows:
        assert float(last) < 0.8 * float(first), (loss, first, last)
        assert float(top1) > 0.02, (loss, top1)  # chance: 1 / 400
    png = tmp_path / "contrastive_digits.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000
    assert f"wrote {png}" in out
