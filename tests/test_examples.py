"""The examples run and print what they promise."""

import re


def test_quickstart_prints_the_worked_numbers_and_trains(run_example):
    out = run_example("quickstart.py", "--steps", "60")
    for line in out.splitlines():
        m = re.search(r"\[(\d\.\d{4})\]\s+(\d\.\d{4})$", line)
        if m:
            assert m.group(1) == m.group(2), line
    assert len(re.findall(r"\[(\d\.\d{4})\]", out)) == 6
    first = float(re.search(r"first loss\s+([\d.]+)", out).group(1))
    final = float(re.search(r"final loss\s+([\d.]+)", out).group(1))
    accuracy = float(re.search(r"train accuracy\s+([\d.]+)", out).group(1))
    assert final < 0.5 * first
    assert accuracy > 0.9


def test_sharded_training_losses_match_one_device(run_example):
    out = run_example("sharded_training.py", "--quick")
    assert "mesh: {'data': 4, 'model': 2}" in out
    assert "unembed  (32, 64)     P(None, 'model')" in out  # the vocabulary is split
    rows = re.findall(r"^\s*(\d+)\s+([\d.]+)\s+([\d.]+)\s+([\d.]+)\s+\S+$", out, re.M)
    assert len(rows) == 6, out
    for _, shard_map, jit, single in rows:
        single = float(single)
        assert abs(float(shard_map) - single) <= 1e-5 * max(1.0, single), out
        assert abs(float(jit) - single) <= 1e-5 * max(1.0, single), out
    assert float(rows[-1][3]) < float(rows[0][3])  # it trains
    param_diff = float(re.search(r"max \|parameter difference\| after \d+ steps: (\S+)", out)[1])
    assert param_diff < 1e-4
