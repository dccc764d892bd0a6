"""`apb2face bench`: the JSON shape the issue specifies, with figures that are real measurements."""

from __future__ import annotations

import json

from apb2face.cli.main import main


def test_bench_json_shape(tmp_path, capsys):
    out = tmp_path / "bench.json"
    assert (
        main(
            [
                "bench",
                "--configs",
                "mobile",
                "--size",
                "64",
                "--repeats",
                "1",
                "--seconds",
                "1",
                "--threads",
                "1",
                "--json",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    report = json.loads(capsys.readouterr().out)
    assert report == json.loads(out.read_text())
    assert list(report["configs"]) == ["mobile"]
    fps_keys = {"torch_b1", "torch_b8", "onnx_b1", "onnx_b8", "onnx_int8_b1", "onnx_int8_b8", "e2e_b1"}
    for name, c in report["configs"].items():
        assert set(c) == {"params", "gmac", "fps", "stream_latency_ms"}
        assert set(c["fps"]) == fps_keys
        assert all(v > 0 for v in c["fps"].values())
        assert set(c["stream_latency_ms"]) == {"p50", "p95"}
        # a live frame can never be ready before its look-ahead of audio has been spoken
        assert 162.5 <= c["stream_latency_ms"]["p50"] <= c["stream_latency_ms"]["p95"]
        assert c["params"] > 1_000_000 and 0 < c["gmac"] < 1
        assert report["setup"]["per_config"][name]["image_size"] == 64
    assert report["setup"]["per_config"]["mobile"]["generator"] == "mobile"


def test_bench_rejects_unknown_config(capsys):
    assert main(["bench", "--configs", "nope"]) == 2
    assert "unknown config" in capsys.readouterr().err
