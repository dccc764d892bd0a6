"""Re-voice a video: the same frames at the same resolution and frame rate, the face (or only its lower half)
replaced by a generated one whose head pose and blinks follow the video and whose mouth follows new audio.

    report = revoice(pipe, "id00", "talk.mp4", "new_speech.wav", "dubbed.mp4", RevoiceConfig(region="mouth"))

Two passes over the video, never holding more than a few frames:

1. track    `track_video`   decode every frame once, find the face (the face mesh in video mode, as `prepare` and
                            `motion_from_video` measure it), keep per frame only the pose, eye aspect ratios and the
                            few landmarks the paste needs; boxes are smoothed in time (`compose.smooth_track`)
2. render   `revoice`       the output's frames play the video forward, then backward, then forward ... (ping-pong,
                            no jump) for as long as the new audio lasts; per batch: generate the crops (`pipe.step`),
                            read the frames (`FrameReader`: sequential decoding, short backward chunks by seeking),
                            paste (`compose.paste`), encode (`Mp4Writer`, atomic, audio pushed batch by batch);
                            decoding, model + paste and encoding run in three threads (`RevoiceConfig.overlap`: the
                            same file, at about the pace of the slowest stage on two or more cores)

Frames where no face was found pass through unchanged. The new audio replaces the old; `mix=True` keeps the old one
under it (played once from the start, at `mix_gain`).

The modules, one concern each: `config` (RevoiceConfig), `timing` (StageTimer), `tracking` (pass 1, FaceTrack),
`frames` (FrameReader), `playback` (the output's soundtrack and ping-pong play order), `paste` (generate + paste +
encode per batch), `overlap` (stages in threads of their own) and `render` (plan and run the whole: `revoice`).
"""

from apb2face.inference.revoice.config import RevoiceConfig
from apb2face.inference.revoice.frames import FrameReader, cache_frames
from apb2face.inference.revoice.paste import PastedBatch, PasteJob, paste_batches, paste_face, write_pasted
from apb2face.inference.revoice.playback import pingpong, soundtrack
from apb2face.inference.revoice.render import (
    RevoicePlan,
    RevoiceReport,
    full_frame_batches,
    plan_revoice,
    revoice,
)
from apb2face.inference.revoice.timing import STAGES, StageTimer
from apb2face.inference.revoice.tracking import (
    MAX_FRAME_PIXELS,
    FaceTrack,
    TrackBuilder,
    check_video_size,
    decoded_frames,
    fill_missing,
    rgb_frames,
    track_video,
)

__all__ = [
    "MAX_FRAME_PIXELS",
    "STAGES",
    "FaceTrack",
    "FrameReader",
    "PasteJob",
    "PastedBatch",
    "RevoiceConfig",
    "RevoicePlan",
    "RevoiceReport",
    "StageTimer",
    "TrackBuilder",
    "cache_frames",
    "check_video_size",
    "decoded_frames",
    "fill_missing",
    "full_frame_batches",
    "paste_batches",
    "paste_face",
    "pingpong",
    "plan_revoice",
    "revoice",
    "rgb_frames",
    "soundtrack",
    "track_video",
    "write_pasted",
]
