"""A second offline text-to-speech engine with phoneme timings: CMU Flite (Debian package `flite`).

espeak-ng is a formant synthesiser: every built-in sentence has its spectra and rhythm. Flite's voices are built from
recordings of real speakers (`slt`, `rms` and `awb` are statistical parametric voices trained on the CMU ARCTIC
recordings, `kal16` concatenates a real speaker's diphones), with data-driven durations and intonation, so training
audio spoken by them is closer to the human voices users drive the model with. Flite and its voices are under a
BSD-style licence (free for any use), so what a model learns from them may ship.

`synthesize(text, voice, f0, stretch)` runs the `flite` program once (it is deterministic) and reads back the
waveform and its segments (`-psdur`: each phone with its end time), mapped from Flite's ARPAbet to the IPA keys of
`visemes`, as `speech.synthesize` gives them for espeak-ng.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

from apb2face.data.audio import SAMPLE_RATE, load_audio
from apb2face.data.synth.speech import Speech, peak_normalised
from apb2face.errors import UserError

VOICES = ("slt", "rms", "awb", "kal16")  # the voices Debian's flite 2.2 has built in, 16 kHz
FEMALE_VOICES = ("slt",)
MALE_VOICES = ("rms", "awb", "kal16")

# Flite's US English phone set (cmulex) -> IPA as espeak-ng writes it; "pau" is a pause
ARPABET_IPA = {
    "aa": "ɑ",
    "ae": "æ",
    "ah": "ʌ",
    "ao": "ɔ",
    "aw": "aʊ",
    "ax": "ə",
    "axr": "ɚ",
    "ay": "aɪ",
    "eh": "ɛ",
    "er": "ɜ",
    "ey": "eɪ",
    "ih": "ɪ",
    "iy": "i",
    "ow": "oʊ",
    "oy": "ɔɪ",
    "uh": "ʊ",
    "uw": "u",
    "b": "b",
    "ch": "tʃ",
    "d": "d",
    "dh": "ð",
    "f": "f",
    "g": "ɡ",
    "hh": "h",
    "jh": "dʒ",
    "k": "k",
    "l": "l",
    "m": "m",
    "n": "n",
    "ng": "ŋ",
    "p": "p",
    "r": "ɹ",
    "s": "s",
    "sh": "ʃ",
    "t": "t",
    "th": "θ",
    "v": "v",
    "w": "w",
    "y": "j",
    "z": "z",
    "zh": "ʒ",
    "pau": "",
}


def flite_program() -> str:
    """Path of the `flite` program; UserError saying how to install it when it is missing."""
    found = shutil.which("flite")
    if found is None:
        raise UserError("the flite speech synthesiser is not installed (Debian/Ubuntu: apt-get install flite)")
    return found


def parse_segments(printed: str) -> list[tuple[float, str]]:
    """Flite's `-psdur` line ("pau:0.220 hh:0.295 ...", end times) -> phoneme onsets [(seconds, IPA)]."""
    onsets, start = [], 0.0
    for item in printed.split():
        phone, _, end = item.rpartition(":")
        if phone not in ARPABET_IPA:
            raise ValueError(f"flite printed an unknown phone {phone!r}")
        onsets.append((round(start, 4), ARPABET_IPA[phone]))
        start = float(end)
    return onsets


def synthesize(text: str, voice: str = "slt", f0: float | None = None, stretch: float = 1.0) -> Speech:
    """Speak `text` with a Flite voice (VOICES); `f0` sets the mean pitch in Hz (None: the voice's own), `stretch`
    scales every duration (1.2 = 20 % slower). Audio at 16 kHz, peak-normalised to 0.9, as `speech.synthesize`."""
    if not text.strip():
        raise UserError("text to speak is empty")
    if voice not in VOICES:
        raise ValueError(f"unknown flite voice {voice!r}; choose from {', '.join(VOICES)}")
    command = [flite_program(), "-voice", voice, "-psdur", "--setf", f"duration_stretch={stretch:.4f}"]
    if f0 is not None:
        command += ["--setf", f"int_f0_target_mean={f0:.2f}"]
    with tempfile.TemporaryDirectory() as tmp:
        wav = Path(tmp) / "speech.wav"
        done = subprocess.run([*command, "-t", text, "-o", str(wav)], capture_output=True, text=True, check=False)
        if done.returncode != 0 or not wav.is_file():
            raise UserError(f"flite failed on {text[:40]!r}: {(done.stderr or done.stdout).strip()[:200]}")
        audio = load_audio(wav, SAMPLE_RATE)
    return Speech(audio=peak_normalised(audio), sample_rate=SAMPLE_RATE, phonemes=parse_segments(done.stdout))
