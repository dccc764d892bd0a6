"""The HTTP API of a real `apb2face serve` process: every route, every refusal (JSON errors, never a 500)."""

from __future__ import annotations

import io
import re
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest

from tests.inference.helpers import astronaut, speech, write_wav
from tests.serve.conftest import Server, wait_for_job


def png_bytes(image: np.ndarray) -> bytes:
    import cv2

    ok, data = cv2.imencode(".png", image[..., ::-1])
    assert ok
    return data.tobytes()


def bomb_png(side: int = 30000) -> bytes:
    """A PNG that declares side x side pixels (900 MP) but is a few hundred bytes: a decompression bomb."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    rows = zlib.compress(b"\x00" * (side * 3 + 1) * 64)  # only the first rows: enough to look real
    header = struct.pack(">IIBBBBB", side, side, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", rows) + chunk(b"IEND", b"")


def wav_bytes(tmp_path: Path, seconds: float | None = None) -> bytes:
    audio, rate = speech()
    if seconds is not None:
        audio = np.resize(audio, int(seconds * rate))
    return write_wav(tmp_path / "speech.wav", audio, rate).read_bytes()


def assert_error(response, status: int, pattern: str) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert body["status"] == status and re.search(pattern, body["error"]), body


def decode_mp4(data: bytes) -> tuple[int, float, float]:
    """(video frames, video seconds, audio seconds) of an MP4 read back with PyAV."""
    import av

    with av.open(io.BytesIO(data)) as container:
        video = container.streams.video[0]
        frames = sum(1 for _ in container.decode(video))
    with av.open(io.BytesIO(data)) as container:
        audio = sum(f.samples for f in container.decode(container.streams.audio[0])) / 48000
    return frames, frames / 25, audio


def test_health_identities_docs_and_page(api_server: Server) -> None:
    with api_server.client() as c:
        health = c.get("/healthz").json()
        assert health["status"] == "ok" and health["live"]["limit"] == 1
        names = [i["name"] for i in c.get("/v1/identities").json()["identities"]]
        assert names == ["astronaut", "mirrored"]
        image = c.get("/v1/identities/astronaut.png")
        assert image.status_code == 200 and image.content.startswith(b"\x89PNG")
        assert_error(c.get("/v1/identities/nobody.png"), 404, "no such identity")
        schema = c.get("/openapi.json").json()
        assert {"/v1/videos", "/v1/videos/{job_id}", "/v1/videos/{job_id}.mp4", "/healthz"} <= set(schema["paths"])
        for path in ("/docs", "/"):
            html = c.get(path)
            assert html.status_code == 200
            # every asset is served by the server itself: no absolute URL to anywhere else
            assert not re.search(r"""(src|href)=["']?(https?:)?//""", html.text), path
            for asset in re.findall(r"""(?:src|href)=["']?(/[^"' >]+)""", html.text):
                assert c.get(asset).status_code == 200, asset
        assert "cdn" not in c.get("/static/app.js").text.lower()


def test_text_job_runs_to_an_mp4_with_audio(api_server: Server) -> None:
    with api_server.client() as c:
        r = c.post("/v1/videos", data={"identity": "astronaut", "text": "Hello there."})
        assert r.status_code == 202, r.text
        job = r.json()
        assert job["state"] == "queued" and re.fullmatch(r"[0-9a-f]{32}", job["id"])
        assert r.headers["location"] == f"/v1/videos/{job['id']}"
        done = wait_for_job(c, job["id"])
        assert done["state"] == "done" and done["progress"] == 1.0 and done["error"] is None, done
        video = c.get(done["video"])
        assert video.status_code == 200 and video.headers["content-type"] == "video/mp4"
        frames, video_s, audio_s = decode_mp4(video.content)
        assert frames == done["frames"] > 10
        assert abs(video_s - audio_s) < 0.1


def test_audio_and_photo_job(api_server: Server, tmp_path: Path) -> None:
    with api_server.client() as c:
        files = {
            "photo": ("../../etc/pass\u202ewd\u00e9", png_bytes(astronaut()), "image/png"),  # hostile names: unused
            "audio": ("/tmp/x.wav", wav_bytes(tmp_path), "audio/wav"),
        }
        r = c.post("/v1/videos", files=files, data={"seed": "3"})
        assert r.status_code == 202, r.text
        done = wait_for_job(c, r.json()["id"])
        assert done["state"] == "done" and done["reference"] == "photo", done
        frames, _video_s, audio_s = decode_mp4(c.get(done["video"]).content)
        assert abs(frames / 25 - audio_s) < 0.1
    names = sorted(p.name for p in api_server.data_dir.rglob("*") if p.is_file())
    assert all(re.fullmatch(r"jobs\.sqlite3(-wal|-shm)?|server\.lock|[0-9a-f]{32}\.mp4", n) for n in names), names


def test_photo_without_a_face_fails_the_job_with_a_reason(api_server: Server) -> None:
    with api_server.client() as c:
        grey = np.full((200, 200, 3), 128, np.uint8)
        r = c.post("/v1/videos", files={"photo": ("a.png", png_bytes(grey), "image/png")}, data={"text": "Hi."})
        assert r.status_code == 202, r.text
        failed = wait_for_job(c, r.json()["id"])
        assert failed["state"] == "failed" and "no face" in failed["error"], failed
        assert_error(c.get(f"/v1/videos/{failed['id']}.mp4"), 409, "not ready.*failed")


@pytest.mark.parametrize(
    ("data", "files", "status", "pattern"),
    [
        ({"text": "Hi."}, {}, 422, "exactly one of identity"),
        ({"identity": "astronaut"}, {}, 422, "exactly one of audio"),
        (
            {"identity": "astronaut", "text": "Hi."},
            {"photo": ("p.png", b"\x89PNG\r\n\x1a\nxx", "image/png")},
            422,
            "exactly one of identity",
        ),
        ({"identity": "nobody", "text": "Hi."}, {}, 422, "unknown identity"),
        ({"identity": "../../etc/passwd", "text": "Hi."}, {}, 422, "unknown identity"),
        ({"identity": "astronaut\u202e\u0000", "text": "Hi."}, {}, 422, "unknown identity"),
        ({"identity": "/etc/hosts", "text": "Hi."}, {}, 422, "unknown identity"),
        ({"identity": "astronaut", "text": "   "}, {}, 422, "text is empty"),
        ({"identity": "astronaut", "text": "x" * 301}, {}, 413, "longer than the limit of 300"),
        ({"identity": "astronaut", "text": "Hi.", "voice": "../x"}, {}, 422, "voice"),
        ({"identity": "astronaut", "text": "Hi.", "seed": "abc"}, {}, 422, "seed"),
        ({"text": "Hi."}, {"photo": ("p.txt", b"hello, not an image", "text/plain")}, 415, "PNG, JPEG"),
        (
            {"text": "Hi."},
            {"photo": ("p.png", b"\x89PNG\r\n\x1a\n" + b"\0" * 64, "image/png")},
            422,
            "cannot be decoded",
        ),
        ({"text": "Hi."}, {"photo": ("bomb.png", bomb_png(), "image/png")}, 413, "30000x30000 pixels"),
        (
            {"identity": "astronaut"},
            {"audio": ("a.png", b"\x89PNG\r\n\x1a\n" + b"\0" * 64, "image/png")},
            415,
            "audio file",
        ),
        (
            {"identity": "astronaut"},
            {"audio": ("a.wav", b"RIFF....WAVEfmt garbage" * 10, "audio/wav")},
            422,
            "cannot be decoded",
        ),
    ],
)
def test_bad_submissions_are_refused_with_json(api_server: Server, data, files, status, pattern) -> None:
    with api_server.client() as c:
        assert_error(c.post("/v1/videos", data=data, files=files or None), status, pattern)


def test_too_long_audio_and_too_large_body(api_server: Server, tmp_path: Path) -> None:
    with api_server.client() as c:
        long_wav = wav_bytes(tmp_path, seconds=9.0)  # limit 8 s, 288 kB
        r = c.post("/v1/videos", data={"identity": "astronaut"}, files={"audio": ("a.wav", long_wav, "audio/wav")})
        assert_error(r, 413, "longer than the limit of 8 s")
        big = b"\0" * (1024 * 1024 + 1)  # limit 1 MiB
        r = c.post("/v1/videos", data={"identity": "astronaut"}, files={"audio": ("a.wav", big, "audio/wav")})
        assert_error(r, 413, "larger than the limit")

        def chunks():  # no Content-Length: the limit is applied while the body streams in
            yield b'--x\r\nContent-Disposition: form-data; name="audio"; filename="a.wav"\r\n\r\n'
            for _ in range(40):
                yield b"\0" * 65536

        r = c.post("/v1/videos", content=chunks(), headers={"content-type": "multipart/form-data; boundary=x"})
        assert_error(r, 413, "larger than the limit")
    assert not list((api_server.data_dir / "uploads").iterdir())


@pytest.mark.parametrize(
    "path",
    [
        "/v1/videos/%C3%A9%E2%80%AE",
        "/v1/videos/" + "0" * 31 + "%EF%BC%90",  # a fullwidth digit
        "/v1/videos/0123",
        "/v1/videos/" + "0" * 32,
        "/v1/videos/" + "0" * 32 + ".mp4",
        "/v1/videos/..%2F..%2Fjobs.sqlite3",
        "/v1/videos/%2e%2e",
    ],
)
def test_unknown_or_hostile_job_ids_are_404(api_server: Server, path: str) -> None:
    with api_server.client() as c:
        assert c.get(path).status_code == 404
        assert c.delete(path).status_code in (404, 405)


def test_static_files_cannot_reach_outside_their_folder(api_server: Server) -> None:
    with api_server.client() as c:
        for path in ("/static/../app.py", "/static/%2e%2e/app.py", "/static/..%2Fconfig.py", "/static//etc/passwd"):
            r = c.get(path)
            assert r.status_code == 404 and "ServeConfig" not in r.text and "root:" not in r.text, path


def test_delete_cancels_a_queued_job_and_removes_a_finished_one(api_server: Server) -> None:
    with api_server.client() as c:
        long_text = "This sentence keeps the worker busy for a while, so that the next job waits."
        first = c.post("/v1/videos", data={"identity": "astronaut", "text": long_text}).json()
        second = c.post("/v1/videos", data={"identity": "mirrored", "text": "Hi."}).json()
        assert c.delete(f"/v1/videos/{second['id']}").json() == {"id": second["id"], "state": "cancelled"}
        assert c.get(f"/v1/videos/{second['id']}").json()["state"] == "cancelled"
        # a running job stops at its next batch (tests/serve/test_jobs.py checks that path deterministically)
        after = c.delete(f"/v1/videos/{first['id']}").json()["state"]
        final = wait_for_job(c, first["id"]) if after != "deleted" else None
        assert after == "deleted" or final["state"] == "cancelled", (after, final)
        assert not (api_server.data_dir / "videos" / f"{first['id']}.mp4").exists()
        done = wait_for_job(c, c.post("/v1/videos", data={"identity": "astronaut", "text": "Hi."}).json()["id"])
        assert c.delete(f"/v1/videos/{done['id']}").json()["state"] == "deleted"
        assert c.get(f"/v1/videos/{done['id']}").status_code == 404
        assert not (api_server.data_dir / "videos" / f"{done['id']}.mp4").exists()
