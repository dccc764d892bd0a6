"""The page in a real browser: Debian's Chromium driven by Playwright, its microphone fed from a WAV file.

A live session starts, the microphone's audio goes out, frames come back and the mouth on them follows the audio;
an offline job submitted through the page's form plays in its <video>. Screenshots (built-in identities only) go to
the test's temporary folder, or to docs/images/ with APB2FACE_SCREENSHOTS=1. Slow (about two minutes): RUN_SLOW=1.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest

from apb2face.data import audio as A
from tests.inference.helpers import write_wav
from tests.serve.conftest import Server
from tests.serve.live_client import decode, mouth_openings

REPO = Path(__file__).resolve().parents[2]
SENTENCE = "Hello there, how are you doing today? The weather is lovely, and I feel great."

pytestmark = pytest.mark.slow


def find_chromium() -> str | None:
    return os.environ.get("APB2FACE_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture(scope="module")
def chromium() -> str:
    """Debian's Chromium: found, or installed with apt-get when this runs as root; skipped only when neither works."""
    found = find_chromium()
    if found is None and shutil.which("apt-get") and os.geteuid() == 0:
        for command in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", "chromium"]):
            subprocess.run(command, capture_output=True, timeout=900, check=False)
        found = find_chromium()
    if found is None:
        pytest.skip("Chromium is not installed and could not be installed (Debian: apt-get install -y chromium)")
    return found


def chromium_args(wav: Path) -> list[str]:
    """Playwright gives every launch a fresh temporary profile (--user-data-dir) itself."""
    return [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--use-fake-ui-for-media-stream",
        "--use-fake-device-for-media-stream",
        f"--use-file-for-fake-audio-capture={wav}",
        "--autoplay-policy=no-user-gesture-required",
    ]


@pytest.fixture
def browser(tmp_path: Path, chromium: str):
    playwright_api = pytest.importorskip("playwright.sync_api")
    from apb2face.data.synth.speech import synthesize

    speech = synthesize(SENTENCE, voice="en-us")
    audio = A.resample(speech.audio, speech.sample_rate, A.SAMPLE_RATE)
    wav = write_wav(tmp_path / "mic.wav", np.concatenate([audio, np.zeros(A.SAMPLE_RATE, np.float32)]), A.SAMPLE_RATE)
    with playwright_api.sync_playwright() as p:
        launched = p.chromium.launch(executable_path=chromium, args=chromium_args(wav))
        try:
            yield launched
        finally:
            launched.close()


def step(text: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {text}", flush=True)


@pytest.mark.timeout(1800)
def test_live_microphone_and_offline_job_in_chromium(browser, demo_server: Server, tmp_path: Path) -> None:
    shots = REPO / "docs" / "images" if os.environ.get("APB2FACE_SCREENSHOTS") == "1" else tmp_path
    page = browser.new_page(viewport={"width": 1100, "height": 720})
    sent: list[bytes] = []
    frames: list[tuple[dict, bytes]] = []

    def on_websocket(ws) -> None:
        from apb2face.serve.live import unpack

        ws.on("framesent", lambda payload: sent.append(payload) if isinstance(payload, bytes) else None)
        ws.on("framereceived", lambda payload: frames.append(unpack(payload)) if isinstance(payload, bytes) else None)

    page.on("websocket", on_websocket)
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    step("page")
    page.goto(demo_server.url + "/")
    page.wait_for_function("document.querySelectorAll('#identity option').length > 0")
    page.select_option("#identity", "id01")

    # live: connect (the idle face shows), then talk for the length of the sentence
    step("connect")
    page.click("#connect")
    page.wait_for_function("document.getElementById('live-status').textContent.startsWith('live')", timeout=60_000)
    page.wait_for_function("window.apb2face.frames >= 5", timeout=120_000)
    step("talk")
    page.click("#talk")
    page.wait_for_function("window.apb2face.talking === true", timeout=30_000)
    page.wait_for_timeout(
        (len(SENTENCE) / 14 + 1.0) * 1000
    )  # espeak-ng speaks about 14 characters a second; the WAV has 1 s of silence
    page.click("#talk")
    sample_rate = page.evaluate("window.apb2face.audio.sampleRate")
    mic = np.concatenate([np.frombuffer(b, "<i2") for b in sent]).astype(np.float32) / 32768
    mic16 = A.resample(mic, int(sample_rate), A.SAMPLE_RATE)
    step(f"sent {len(mic16)} samples; waiting for their frames")
    # wait for the frames of everything the microphone sent (rendering may lag behind real time on a busy machine)
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        heard = [h["input_sample"] for h, _ in frames if h["type"] == "frame" and h["input_sample"] is not None]
        if heard and max(heard) >= len(mic16) - 2000:
            break
        page.wait_for_timeout(500)  # (Playwright delivers the WebSocket events while it waits)
    step(f"{len(frames)} frames received")
    page.screenshot(path=str(shots / "serve-live.png"))
    page.click("#connect")  # stop the session

    talking = [(h, p) for h, p in frames if h["type"] == "frame" and h["input_sample"] is not None]
    assert len(talking) >= 50, f"{len(talking)} frames of microphone audio"
    indices = [h["index"] for h, _ in frames if h["type"] == "frame"]
    assert indices == list(range(len(indices)))  # none lost, none repeated
    mouth = mouth_openings([decode(p) for _, p in talking])
    positions = np.array([h["input_sample"] for h, _ in talking])
    energy = np.array([np.sqrt(np.mean(mic16[max(0, s - 320) : s + 320] ** 2) + 1e-12) for s in positions])
    from apb2face.evaluation.metrics import lipsync_correlation

    r, lag = lipsync_correlation(mouth, energy, max_lag=3)
    latencies = [h["latency_ms"] for h, _ in talking]
    print(
        f"browser live: {len(talking)} microphone frames at {sample_rate} Hz, lip-sync r {r:.3f} (lag {lag}), "
        f"face found {100 * np.isfinite(mouth).mean():.0f}%, latency p50 {np.percentile(latencies, 50):.0f} ms "
        f"p95 {np.percentile(latencies, 95):.0f} ms"
    )
    assert np.nanstd(energy) > 0.01, "the fake microphone sent silence"
    assert r is not None and r >= 0.3
    shown = page.evaluate("document.getElementById('latency-p50').textContent")
    assert shown.isdigit(), shown  # the page shows the latency

    # offline: the form's text job, its progress bar, then the video plays
    page.fill("#job-text", "Hello from the page.")
    step("offline job")
    page.click("#submit")
    page.wait_for_function("document.getElementById('player').currentSrc.endsWith('.mp4')", timeout=600_000)
    page.wait_for_function(
        "(() => { const v = document.getElementById('player'); return v.readyState >= 2 && v.currentTime > 0.2; })()",
        timeout=60_000,
    )
    assert page.evaluate("document.getElementById('player').error") is None
    assert page.evaluate("document.getElementById('progress').value") == 1
    page.evaluate("document.getElementById('player').pause()")
    page.screenshot(path=str(shots / "serve-video.png"))
    assert not errors, errors
