"""examples/robust_regression.py runs (quick mode) and the robust losses win on corrupted data."""

import re

ROW = re.compile(r"^(\S.*?)\s+(\d+\.\d\d)\s+(\d+\.\d\d)$")


def test_robust_regression_quick_prints_the_table_and_writes_the_png(run_example, tmp_path):
    out = run_example("robust_regression.py", "--quick", "--out", str(tmp_path))
    rows = {m[1]: (float(m[2]), float(m[3])) for m in map(ROW.match, out.splitlines()) if m}
    assert set(rows) == {
        "MSE",
        "L1",
        "Huber delta=1",
        "smooth L1 beta=0.25",
        "Gaussian NLL",
        "MSE on clean targets",
    }
    mse_mae = rows["MSE"][0]
    for robust in ("L1", "Huber delta=1", "smooth L1 beta=0.25"):
        # the bounded-gradient losses ignore most of the corruption: well below MSE's error,
        # close to MSE trained on the clean targets
        assert rows[robust][0] < 0.8 * mse_mae, (robust, rows)
        assert rows[robust][0] < 1.25 * rows["MSE on clean targets"][0], (robust, rows)
    assert rows["MSE on clean targets"][0] < mse_mae
    for mae, rmse in rows.values():
        assert 0 < mae <= rmse < 200  # progression spans 25 to 346; RMSE >= MAE always
    png = tmp_path / "robust_regression.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000
    assert f"wrote {png}" in out
