"""Several people in one scene, each with their own voice: every face of a still image or a video is matched to a
checkpoint identity, driven by its own speech, and pasted back into the scene at its own resolution.

    audio = speakers_from_files([("id00", "alice.wav"), ("id03", "bob.wav")])
    report = generate_scene(pipe, "two_people.png", audio, "talk.mp4")

Each step in the module named on its right::

    audio: one track per speaker (silence where that speaker does not speak) and the mix        speakers
      the output plays, from one file per speaker, one multi-channel file, or one mixed
      file and a timeline of turns (`start,end,name` rows in seconds)
    track: a still is read once, a video decoded once with a multi-face mesh and each           tracking
      detection joined to the nearest track; each face a `revoice.FaceTrack`, left to right
    cast: faces paired with checkpoint identities nearest first (face recogniser), or the      render
      i-th speaker with the i-th face from the left; a face that is no known person stays
    render: per face its speaker's track (or silence: a listener) drives the model; pose and   render
      blinks follow the tracked face in a video, natural motion per face for a still; every
      face pasted with the full-frame paste-back
    stream: the same scene live, one audio stream per speaker pushed as it comes, full scene   streaming
      frames out in order (`SceneStreamingSession`)
"""

from apb2face.inference.scene.render import (
    ASSIGN,
    SceneConfig,
    SceneFace,
    SceneReport,
    cast_faces,
    face_motion,
    generate_scene,
    match_identities,
)
from apb2face.inference.scene.speakers import (
    SceneAudio,
    Turn,
    check_names,
    parse_speaker,
    read_timeline,
    speakers_from_channels,
    speakers_from_files,
    speakers_from_timeline,
)
from apb2face.inference.scene.streaming import SceneFrame, SceneStreamingSession
from apb2face.inference.scene.tracking import SceneTrack, track_image, track_scene

__all__ = [
    "ASSIGN",
    "SceneAudio",
    "SceneConfig",
    "SceneFace",
    "SceneFrame",
    "SceneReport",
    "SceneStreamingSession",
    "SceneTrack",
    "Turn",
    "cast_faces",
    "check_names",
    "face_motion",
    "generate_scene",
    "match_identities",
    "parse_speaker",
    "read_timeline",
    "speakers_from_channels",
    "speakers_from_files",
    "speakers_from_timeline",
    "track_image",
    "track_scene",
]
