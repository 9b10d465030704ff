"""The metric-learning example trains embeddings with the triplet and cosine losses."""

import re


def test_metric_learning_quick_embeds_the_digits_and_plots(run_example, tmp_path):
    out = run_example("metric_learning.py", "--quick", "--out", str(tmp_path))
    scores = dict(re.findall(r"^  (\S.*?)\s+(\d\.\d{4})$", out, re.M))
    assert set(scores) == {
        "raw pixels (64-D)",
        "untrained network",
        "triplet_margin_loss",
        "cosine_embedding_loss",
    }, out
    chance = float(re.search(r"chance (\d\.\d+)", out).group(1))
    for name in ("triplet_margin_loss", "cosine_embedding_loss"):
        assert float(scores[name]) > 0.9 > 5 * chance, out  # far above chance (0.1)
        first, last = map(float, re.search(rf"^{name}\s+loss (\S+) -> (\S+)$", out, re.M).groups())
        assert last < first / 3, out  # it trains
    png = tmp_path / "metric_learning.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert f"wrote {png}" in out
