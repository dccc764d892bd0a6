"""What `prepare` tells its user: report.json and a contact sheet PNG per video, and the end-of-run table."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from pathlib import Path

import cv2
import numpy as np

from apb2face.data import face
from apb2face.data.prepare.active_speaker import NOBODY, SpeakerDecision
from apb2face.data.prepare.jobs import PrepareConfig, VideoJob, VideoResult
from apb2face.data.prepare.sync import OffsetEstimate, runs
from apb2face.data.prepare.track import Track
from apb2face.data.video import ConstantRateFrames, VideoInfo


@dataclass
class VideoFacts:
    """What one video's report is made of."""

    info: VideoInfo
    reader: ConstantRateFrames
    track: Track
    n: int  # frames covered by both video and audio
    clips: list[tuple[int, int]]
    offset: OffsetEstimate
    audio_source: str
    audio_shift: float  # seconds
    audio_seconds: float
    test_from: int | None
    seconds: float  # time taken


def stats(values: np.ndarray) -> dict:
    """min / median / max of the finite values, rounded (empty when there are none)."""
    v = np.asarray(values, np.float64)
    v = v[np.isfinite(v)]
    if v.size == 0:
        return {}
    return {"min": round(float(v.min()), 2), "median": round(float(np.median(v)), 2), "max": round(float(v.max()), 2)}


def _kept_mask(n: int, clips: list[tuple[int, int]]) -> np.ndarray:
    kept = np.zeros(n, bool)
    for a, b in clips:
        kept[a:b] = True
    return kept


def _warnings(cfg: PrepareConfig, f: VideoFacts, kept: np.ndarray) -> list[str]:
    """What the user should know about how this video was read and cropped."""
    track, n = f.track, f.n
    warnings = []
    if f.reader.error:
        warnings.append(f.reader.error)
    if f.reader.irregular:
        warnings.append("variable frame rate: resampled by timestamp")
    if abs(track.n - n) > 1:
        which = "video" if track.n > n else "audio"
        warnings.append(f"{which} is longer ({track.n} video frames, audio covers {n}); the excess is dropped")
    sides = track.boxes[:n, 2][track.face[:n]]
    if sides.size and float(np.median(sides)) < cfg.size:
        warnings.append(f"face crop is upscaled (median crop side {np.median(sides):.0f} px < {cfg.size})")
    if kept.any() and track.padded[:n][kept].mean() > 0.2:
        warnings.append(f"{track.padded[:n][kept].mean():.0%} of kept crops reach past the frame border (padded)")
    return warnings


def video_report(job: VideoJob, cfg: PrepareConfig, f: VideoFacts) -> dict:
    """The content of reports/<identity>__<stem>.json."""
    track, n = f.track, f.n
    kept = _kept_mask(n, f.clips)
    face_mask = track.face[:n]
    iod = np.array([face.inter_ocular(track.landmarks[i]) if face_mask[i] else np.nan for i in range(n)])
    return {
        "source": Path(job.path).name,
        "identity": job.identity,
        "audio_source": f.audio_source,
        "audio_start_shift_seconds": round(f.audio_shift, 4),
        "video": {
            "width": f.info.width,
            "height": f.info.height,
            "fps": round(f.info.fps, 3),
            "rotation": f.reader.rotation,
            "source_frames_decoded": f.reader.source_frames,
            "duration_seconds": round(f.info.duration, 3),
            "decoded_frame_size": list(track.frame_size),
        },
        "audio_seconds": round(f.audio_seconds, 3),
        "frames": n,
        "frames_with_face": int(face_mask.sum()),
        "faces_missing": int(n - face_mask.sum()),
        "missing_runs": len(runs(~face_mask)),
        "frames_kept": int(kept.sum()),
        "scene_cuts": track.cuts,
        "face_jumps": track.jumps,
        "clips": [
            {
                "name": f"{job.stem}_{i:03d}",
                "start": a,
                "frames": b - a,
                "split": "test" if f.test_from is not None and a >= f.test_from else None,
            }
            for i, (a, b) in enumerate(f.clips)
        ],
        "offset": _offset_report(f.offset, cfg.fps),
        "face_size_px": {"crop_side": stats(track.boxes[:n, 2][face_mask]), "inter_ocular": stats(iod)},
        "pose_degrees": {k: stats(track.pose[:n][kept, i]) for i, k in enumerate(("yaw", "pitch", "roll"))},
        "eye_aspect_ratio": {k: stats(track.ear[:n][kept, i]) for i, k in enumerate(("left", "right"))},
        "padded_frames": int(track.padded[:n][kept].sum()),
        "warnings": _warnings(cfg, f, kept),
        "seconds": round(f.seconds, 2),
        "frames_per_second": round(track.n / max(f.seconds, 1e-6), 1),
        "config": asdict(cfg),
    }


def speakers_report(decision: SpeakerDecision, names: list[str], cfg: PrepareConfig) -> dict:
    """The `speakers` section of a video with several people: the faces left to right, the voices heard (the face
    each was given to, and each face's mean mouth/audio correlation over that voice's speech), the turns (start,
    end, speaker) and the evidence: each face's mean mouth/audio correlation over each turn."""
    fps = cfg.fps
    return {
        "faces": names,
        "lag_frames": decision.lag,
        "window_seconds": cfg.speaker_window_seconds,
        "margin": cfg.speaker_margin,
        "min_turn_seconds": cfg.speaker_min_turn_seconds,
        "seconds": {
            **{name: round(float((decision.labels == i).sum()) / fps, 2) for i, name in enumerate(names)},
            "nobody": round(float((decision.labels == NOBODY).sum()) / fps, 2),
        },
        "voices": [
            {
                "face": names[face] if face >= 0 else None,
                "r": {name: None if not math.isfinite(r) else round(r, 3) for name, r in zip(names, evidence)},
            }
            for face, evidence in zip(decision.voice_faces, decision.voice_evidence)
        ],
        "turns": [
            {
                "start": round(t.start / fps, 2),
                "end": round(t.end / fps, 2),
                "start_frame": t.start,
                "end_frame": t.end,
                "speaker": names[t.speaker],
                "r": {name: None if math.isnan(r) else round(r, 3) for name, r in zip(names, t.scores)},
            }
            for t in decision.turns
        ],
    }


def turns_table(results: list[VideoResult]) -> str:
    """The turns of every video with several people: one line per turn (start-end, speaker, each face's r);
    empty when there is none."""
    lines = []
    seen: set[str] = set()
    for r in results:
        speakers = r.report.get("speakers") if r.error is None else None
        if not speakers or r.job.path in seen:
            continue
        seen.add(r.job.path)
        faces = speakers["faces"]
        lines.append(
            f"{Path(r.job.path).name}: {len(speakers['turns'])} turns, faces left to right: {', '.join(faces)} "
            f"(r = mouth/audio correlation over the turn)"
        )
        width = max(map(len, faces))
        for k, v in enumerate(speakers.get("voices", [])):
            evidence = "  ".join(f"{name} {_r(v['r'][name])}" for name in faces)
            lines.append(
                f"  voice {k + 1} -> {v['face'] or 'nobody (no face follows it)'}  r over its speech: {evidence}"
            )
        for t in speakers["turns"]:
            evidence = "  ".join(f"{name} {_r(t['r'][name])}" for name in faces)
            lines.append(f"  {t['start']:7.2f}-{t['end']:7.2f} s  {t['speaker']:<{width}}  r: {evidence}")
    return "\n".join(lines)


def _r(value: float | None) -> str:
    return "  n/a" if value is None else f"{value:+.2f}"


def _offset_report(offset: OffsetEstimate, fps: float) -> dict:
    return {
        "frames": offset.frames,
        "ms": round(offset.frames * 1000 / fps, 1),
        "r": round(offset.r, 3),
        "r_zero": round(offset.r_zero, 3),
        "null95": round(offset.null95, 3),
        "clear": offset.clear,
        "applied": offset.applied,
        "reason": offset.reason,
    }


def draw_landmarks(tile: np.ndarray, points01: np.ndarray) -> None:
    """Draw mediapipe-478 landmarks given in [0, 1] of the tile (in place): every point as a dot, the face oval,
    brows and nose as green lines, eyes red (subject's right) / blue (left), lips magenta, irises yellow."""
    from mediapipe.python.solutions import face_mesh_connections as conn  # mediapipe is loaded by the tracker

    s = tile.shape[0]
    xy = points01[:, :2] * s
    for x, y in xy:
        if 0 <= x < s and 0 <= y < s:
            tile[int(y), int(x)] = (120, 255, 120)
    groups = [
        (
            conn.FACEMESH_FACE_OVAL | conn.FACEMESH_LEFT_EYEBROW | conn.FACEMESH_RIGHT_EYEBROW | conn.FACEMESH_NOSE,
            (0, 220, 0),
        ),
        (conn.FACEMESH_RIGHT_EYE, (255, 40, 40)),
        (conn.FACEMESH_LEFT_EYE, (40, 120, 255)),
        (conn.FACEMESH_LIPS, (255, 0, 200)),
        (conn.FACEMESH_IRISES, (255, 230, 0)),
    ]
    for edges, colour in groups:
        for a, b in edges:
            if max(a, b) < len(xy):
                cv2.line(
                    tile,
                    (int(round(xy[a, 0] * 4)), int(round(xy[a, 1] * 4))),
                    (int(round(xy[b, 0] * 4)), int(round(xy[b, 1] * 4))),
                    colour,
                    1,
                    cv2.LINE_AA,
                    shift=2,
                )


def contact_sheet(
    track: Track,
    crops: np.ndarray,
    clips: list[tuple[int, int]],
    rms: np.ndarray,
    cfg: PrepareConfig,
    title: str = "",
    tile: int = 192,
) -> np.ndarray:
    """Tiles of kept frames with landmarks drawn and pose/eyes written, over a strip chart of the whole video
    (yaw/pitch/roll, eye aspect ratios, mouth opening, audio RMS; kept frames shaded)."""
    kept = [j for a, b in clips for j in range(a, b)]
    count = min(cfg.contact_tiles, len(kept))
    cols = 4 if count > 4 else max(count, 1)
    nrows = max(1, math.ceil(count / cols))
    chart_h = 150
    sheet = np.full((28 + nrows * tile + chart_h, cols * tile, 3), 255, np.uint8)
    cv2.putText(sheet, title[:90], (6, 19), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 0, 0), 1, cv2.LINE_AA)
    picks = [kept[int(i)] for i in np.linspace(0, len(kept) - 1, count)] if count else []
    clip_of = {j: ci for ci, (a, b) in enumerate(clips) for j in range(a, b)}
    for t, j in enumerate(picks):
        r, c = divmod(t, cols)
        sheet[28 + r * tile : 28 + (r + 1) * tile, c * tile : (c + 1) * tile] = _tile(
            track, crops, j, clip_of[j], cfg.size, tile
        )
    strip_chart(sheet[28 + nrows * tile :], track, clips, rms)
    return sheet


def _tile(track: Track, crops: np.ndarray, j: int, clip: int, size: int, tile: int) -> np.ndarray:
    """Frame j's crop at `tile` pixels with its landmarks drawn and its clip, pose and EAR written on it."""
    img = cv2.resize(np.asarray(crops[track.row[j]]), (tile, tile), interpolation=cv2.INTER_AREA)
    draw_landmarks(img, face.landmarks_to_crop(track.landmarks[j], face.CropBox(*track.boxes[j]), size))
    yaw, pitch, roll = track.pose[j]
    lines = [
        f"clip {clip} f{j}",
        f"y{yaw:+.0f} p{pitch:+.0f} r{roll:+.0f}",
        f"EAR {track.ear[j, 0]:.2f}/{track.ear[j, 1]:.2f}",
    ]
    for li, text in enumerate(lines):
        cv2.putText(img, text, (4, 14 + 14 * li), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (0, 0, 0), 2, cv2.LINE_AA)
        cv2.putText(img, text, (4, 14 + 14 * li), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (255, 255, 255), 1, cv2.LINE_AA)
    return img


def strip_chart(area: np.ndarray, track: Track, clips: list[tuple[int, int]], rms: np.ndarray) -> None:
    """Draw the whole video's signals over time into `area` (in place): kept frames shaded, faceless frames pink."""
    h, w = area.shape[:2]
    n = len(rms)
    if n < 2:
        return
    xs = np.linspace(4, w - 4, n)
    for a, b in clips:
        cv2.rectangle(area, (int(xs[a]), 0), (int(xs[min(b, n) - 1]), h - 1), (225, 240, 225), -1)
        cv2.line(area, (int(xs[a]), 0), (int(xs[a]), h - 1), (120, 180, 120), 1)
    for j in np.flatnonzero(~track.face[:n]):
        cv2.line(area, (int(xs[j]), 0), (int(xs[j]), h - 1), (255, 200, 200), 1)

    def plot(values: np.ndarray, lo: float, hi: float, top: int, height: int, colour: tuple) -> None:
        v = np.clip((np.asarray(values[:n], np.float64) - lo) / (hi - lo), 0, 1)
        ys = top + height - v * height
        ok = np.isfinite(ys)
        for part in runs(ok):
            pts = np.stack([xs[part[0] : part[1]], ys[part[0] : part[1]]], 1).astype(np.int32)
            cv2.polylines(area, [pts], False, colour, 1, cv2.LINE_AA)

    plot(track.pose[:, 0], -30, 30, 2, 44, (200, 0, 0))
    plot(track.pose[:, 1], -30, 30, 2, 44, (0, 140, 0))
    plot(track.pose[:, 2], -30, 30, 2, 44, (0, 0, 200))
    plot(track.ear[:, 0], 0, 0.45, 50, 44, (150, 0, 150))
    plot(track.ear[:, 1], 0, 0.45, 50, 44, (0, 150, 150))
    plot(track.mouth, 0, 0.6, 98, 48, (0, 0, 0))
    plot(rms / max(float(rms.max()), 1e-9), 0, 1, 98, 48, (230, 120, 0))
    for y, label in ((12, "yaw/pitch/roll"), (60, "EAR L/R"), (108, "mouth, audio")):
        cv2.putText(area, label, (6, y), cv2.FONT_HERSHEY_SIMPLEX, 0.35, (60, 60, 60), 1, cv2.LINE_AA)


def summary_table(results: list[VideoResult]) -> str:
    """The end-of-run table: one row per video."""
    head = ("video", "identity", "frames", "kept", "clips", "missing", "offset", "face px", "status")
    rows = [_summary_row(r) for r in results]
    widths = [max(len(h), *(len(row[i]) for row in rows)) if rows else len(h) for i, h in enumerate(head)]
    fmt = "  ".join(f"{{:{'<' if i < 2 else '>'}{w}}}" for i, w in enumerate(widths[:-1])) + "  {}"
    lines = [fmt.format(*head), fmt.format(*("-" * w for w in widths))]
    lines += [fmt.format(*row) for row in rows]
    lines.append(
        "offset: audio lag in frames (+ = audio late); * = corrected; ? = not clear, left as is. "
        "face px: crop side in source pixels"
    )
    return "\n".join(lines)


def _summary_row(r: VideoResult) -> tuple[str, ...]:
    name = Path(r.job.path).name
    if r.error is not None:
        return (name, r.job.identity, "-", "-", "-", "-", "-", "-", "FAILED")
    rep = r.report
    off = rep["offset"]
    offset = f"{off['frames']:+d}{'*' if off['applied'] else ''}" if off["clear"] else "?"
    side = rep["face_size_px"]["crop_side"]
    return (
        name,
        r.job.identity,
        str(rep["frames"]),
        str(rep["frames_kept"]),
        str(len(r.records)),
        str(rep["faces_missing"]),
        offset,
        f"{side.get('min', 0):.0f}-{side.get('max', 0):.0f}",
        "ok" + (f" ({len(rep['warnings'])} warnings)" if rep["warnings"] else ""),
    )
