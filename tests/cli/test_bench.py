"""`apb2face bench`: the JSON shape, figures that are real measurements, one resolution for every config, the host
and the live stream's p50/p95/max latency and frame-budget share."""

from __future__ import annotations

import json

from apb2face.cli.bench import format_table
from apb2face.cli.main import build_parser, main


def test_bench_json_shape_and_table(tmp_path, capsys):
    out = tmp_path / "bench.json"
    argv = ["bench", "--configs", "mobile", "--size", "64", "--repeats", "1", "--seconds", "1", "--threads", "1"]
    assert main([*argv, "--json", "--out", str(out)]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report == json.loads(out.read_text())
    assert list(report["configs"]) == ["mobile"]
    # one thread: no frame-parallel figure; the stream's rate is the one-at-a-time one
    fps_keys = {"torch_b1", "torch_b8", "onnx_b1", "onnx_b8", "onnx_int8_b1", "onnx_int8_b8", "e2e_b1", "e2e"}
    for name, c in report["configs"].items():
        assert set(c) == {"params", "gmac", "fps", "stream_latency_ms", "frame_budget_used"}
        assert set(c["fps"]) == fps_keys
        assert all(v > 0 for v in c["fps"].values())
        assert c["fps"]["e2e"] == c["fps"]["e2e_b1"]
        latency = c["stream_latency_ms"]
        assert set(latency) == {"p50", "p95", "max"}
        # a live frame can never be ready before its look-ahead of audio has been spoken
        assert 162.5 <= latency["p50"] <= latency["p95"] <= latency["max"]
        # a stream's work per frame, over the 40 ms frame period: positive, and measured (not a constant)
        assert 0 < c["frame_budget_used"] < 20
        assert c["params"] > 1_000_000 and 0 < c["gmac"] < 1
        assert report["setup"]["per_config"][name]["image_size"] == 64
        assert report["setup"]["per_config"][name]["lookahead_ms"] == 162.5
    assert report["setup"]["per_config"]["mobile"]["generator"] == "mobile"
    setup = report["setup"]
    assert setup["cpu"] and setup["cpu_count"] >= setup["usable_cpus"] >= 1
    table = format_table(report).splitlines()
    assert table[0].split()[-4:] == ["p50", "p95", "max", "budget"]
    assert table[2].startswith("mobile") and table[2].endswith("%")
    assert table[-1].startswith(f"host: {setup['cpu']}, {setup['cpu_count']} logical cores")


def test_bench_model_overrides_set_the_look_ahead(capsys):
    """A shorter look-ahead is a model setting: bench measures it without a trained checkpoint (speed does not depend
    on the weights), and the latency it prints moves with it."""
    argv = ["bench", "--configs", "mobile", "--size", "64", "--repeats", "1", "--seconds", "1", "--threads", "1"]
    assert main([*argv, "--json", "--no-int8", "model.audio_lookahead=2"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["setup"]["per_config"]["mobile"]["lookahead_ms"] == 62.5  # (2 + 3) x 10 ms + 12.5 ms
    latency = report["configs"]["mobile"]["stream_latency_ms"]
    assert 62.5 <= latency["p50"] < 162.5  # L = 12 can never be under 162.5 ms


def test_bench_takes_only_model_settings(capsys):
    assert main(["bench", "--configs", "mobile", "train.lr=1"]) == 2
    assert "only model.* settings" in capsys.readouterr().err


def test_bench_compares_every_config_at_one_resolution_by_default():
    args = build_parser().parse_args(["bench", "--configs", "paper,mobile"])
    assert args.size == 256  # paper's own is 256 px and mobile's 128 px: side by side they would not compare


def test_bench_rejects_unknown_config(capsys):
    assert main(["bench", "--configs", "nope"]) == 2
    assert "unknown config" in capsys.readouterr().err


def test_bench_with_two_threads_measures_frame_parallel_streams_and_prints_ratios(capsys):
    argv = ["bench", "--configs", "paper,mobile", "--size", "64", "--repeats", "1", "--seconds", "1", "--threads", "2"]
    assert main([*argv, "--json", "--no-int8"]) == 0
    report = json.loads(capsys.readouterr().out)
    for c in report["configs"].values():
        fps = c["fps"]
        assert fps["e2e_par"] > 0 and fps["e2e"] == max(fps["e2e_b1"], fps["e2e_par"])
    table = format_table(report).splitlines()
    paper, mobile = report["configs"]["paper"], report["configs"]["mobile"]
    ratio = mobile["fps"]["e2e"] / paper["fps"]["e2e"]
    macs = paper["gmac"] / mobile["gmac"]
    assert (
        f"against paper (end to end: each config's better of e2e_b1 and e2e_par): mobile {ratio:.1f}x end to end "
        in (table[-3])
    )
    assert f"{macs:.1f}x fewer GMAC" in table[-3]
