"""Offline text-to-speech with phoneme timings: espeak-ng (the library in the `espeakng-loader` wheel) via ctypes.

`synthesize(text, voice, pitch, rate)` returns mono float32 audio at 16 kHz and the phoneme events espeak-ng emits
while it speaks: (time in seconds, IPA string). The events drive the synthetic mouth (visemes) and are reused when
generating from `--text`.

libespeak-ng keeps its state in the process (one voice, one callback), so calls are serialised with a lock, and each
call loads a fresh copy of the library so that its output does not depend on what was spoken before.

Some voice variants (e.g. `+f2`, `+f3`, `+f5`: `breath` in espeak-ng-data/voices/!v) mix random noise into the voice.
espeak-ng draws it from its own generator, which `espeak_ng_Initialize` seeds with the wall clock (`time(NULL)` in
src/libespeak-ng/speech.c); we reseed it with `espeak_ng_SetRandSeed(seed)` right after initialising, so the noise
is a function of `seed` and the same arguments give the same samples at any time, in any process.
"""

from __future__ import annotations

import ctypes
import threading
from dataclasses import dataclass

import numpy as np

from apb2face.data.audio import SAMPLE_RATE, resample
from apb2face.errors import UserError

# espeak-ng C API constants (speak_lib.h)
_AUDIO_OUTPUT_SYNCHRONOUS = 2
_INIT_PHONEME_EVENTS = 0x0001
_INIT_PHONEME_IPA = 0x0002
_EVENT_LIST_TERMINATED = 0
_EVENT_PHONEME = 7
_POS_CHARACTER = 1
_CHARS_UTF8 = 1
_PARAM_RATE = 1
_PARAM_VOLUME = 2
_PARAM_PITCH = 3
_PARAM_RANGE = 4


def noise_seed(seed: int) -> int:
    """`seed` as espeak-ng's generator takes it (it keeps 32 bits): non-negative and below 2**31 - 1, so that seeds
    which differ give different noise."""
    return int(seed) % 0x7FFFFFFF


class _EventId(ctypes.Union):
    _fields_ = [("number", ctypes.c_int), ("name", ctypes.c_char_p), ("string", ctypes.c_char * 8)]


class _Event(ctypes.Structure):
    _fields_ = [
        ("type", ctypes.c_int),
        ("unique_identifier", ctypes.c_uint),
        ("text_position", ctypes.c_int),
        ("length", ctypes.c_int),
        ("audio_position", ctypes.c_int),
        ("sample", ctypes.c_int),
        ("user_data", ctypes.c_void_p),
        ("id", _EventId),
    ]


_CALLBACK = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.POINTER(_Event))


@dataclass(frozen=True)
class Speech:
    """Synthesised speech: audio (float32 mono at `sample_rate`) and phoneme onsets [(seconds, IPA)]."""

    audio: np.ndarray
    sample_rate: int
    phonemes: list[tuple[float, str]]

    @property
    def duration(self) -> float:
        return len(self.audio) / self.sample_rate


class _Espeak:
    """One synthesis with a freshly loaded libespeak-ng.

    The library keeps static state between utterances (flutter/noise generators), so the same text spoken twice in
    one process gives slightly different samples. Loading it, speaking once and unloading it (dlclose) makes every
    call start from the same state, and reseeding its noise generator after initialising removes the clock: same
    arguments -> same bytes, whatever was spoken before and whenever (about 10 ms a call).
    """

    lock = threading.Lock()  # the library is process-global; one utterance at a time

    def __init__(self) -> None:
        self._chunks: list[np.ndarray] = []
        self._events: list[tuple[float, str]] = []

    def _on_audio(self, wav: ctypes.POINTER(ctypes.c_short), n: int, events: ctypes.POINTER(_Event)) -> int:
        if n > 0 and wav:
            self._chunks.append(np.ctypeslib.as_array(wav, shape=(n,)).copy())
        i = 0
        while events[i].type != _EVENT_LIST_TERMINATED:
            ev = events[i]
            if ev.type == _EVENT_PHONEME:
                ipa = bytes(ev.id.string).split(b"\0", 1)[0].decode("utf-8", errors="replace")
                self._events.append((ev.audio_position / 1000.0, ipa))
            i += 1
        return 0

    def speak(
        self, text: str, voice: str, pitch: int, rate: int, pitch_range: int, seed: int
    ) -> tuple[np.ndarray, list, int]:
        import _ctypes

        import espeakng_loader

        with self.lock:
            path = espeakng_loader.get_library_path()
            handle = _ctypes.dlopen(path, ctypes.DEFAULT_MODE)  # our own handle, to dlclose below
            lib = ctypes.CDLL(path, handle=handle)
            try:
                lib.espeak_Initialize.restype = ctypes.c_int
                lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
                lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
                lib.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
                lib.espeak_ng_SetRandSeed.argtypes = [ctypes.c_long]
                lib.espeak_Synth.argtypes = [
                    ctypes.c_void_p,
                    ctypes.c_size_t,
                    ctypes.c_uint,
                    ctypes.c_int,
                    ctypes.c_uint,
                    ctypes.c_uint,
                    ctypes.c_void_p,
                    ctypes.c_void_p,
                ]
                rate_hz = lib.espeak_Initialize(
                    _AUDIO_OUTPUT_SYNCHRONOUS,
                    0,
                    espeakng_loader.get_data_path().encode(),
                    _INIT_PHONEME_EVENTS | _INIT_PHONEME_IPA,
                )
                if rate_hz <= 0:
                    raise RuntimeError("espeak-ng failed to initialise")
                lib.espeak_ng_SetRandSeed(noise_seed(seed))  # initialising seeded the noise from the clock
                callback = _CALLBACK(self._on_audio)
                lib.espeak_SetSynthCallback(callback)
                if lib.espeak_SetVoiceByName(voice.encode()) != 0:
                    raise UserError(f"unknown espeak-ng voice {voice!r}")
                lib.espeak_SetParameter(_PARAM_RATE, int(rate), 0)
                lib.espeak_SetParameter(_PARAM_PITCH, int(pitch), 0)
                lib.espeak_SetParameter(_PARAM_RANGE, int(pitch_range), 0)
                lib.espeak_SetParameter(_PARAM_VOLUME, 100, 0)
                self._chunks, self._events = [], []
                data = text.encode("utf-8") + b"\0"
                lib.espeak_Synth(data, len(data), 0, _POS_CHARACTER, 0, _CHARS_UTF8, None, None)
                lib.espeak_Synchronize()
                lib.espeak_Terminate()
            finally:
                _ctypes.dlclose(handle)
            pcm = np.concatenate(self._chunks) if self._chunks else np.zeros(0, np.int16)
            return pcm, list(self._events), rate_hz


def synthesize(
    text: str,
    voice: str = "en-us",
    pitch: int = 50,
    rate: int = 160,
    pitch_range: int = 50,
    sample_rate: int = SAMPLE_RATE,
    seed: int = 0,
) -> Speech:
    """Speak `text` with an espeak-ng voice ("en-us", "en-gb+f3", ...); pitch and range 0-100, rate in words/min.

    `seed` draws the breath noise of the voice variants that have one (other voices ignore it). Returns audio
    peak-normalised to 0.9 and the phoneme onsets. Deterministic: same arguments, same samples.
    """
    if not text.strip():
        raise UserError("text to speak is empty")
    pcm, events, rate_hz = _Espeak().speak(text, voice, pitch, rate, pitch_range, seed)
    if pcm.size == 0:
        raise UserError(f"espeak-ng produced no audio for {text[:40]!r}")
    audio = resample(pcm.astype(np.float32) / 32768.0, rate_hz, sample_rate)
    return Speech(audio=peak_normalised(audio), sample_rate=sample_rate, phonemes=events)


def peak_normalised(audio: np.ndarray, peak: float = 0.9) -> np.ndarray:
    """float32 `audio` scaled so its largest magnitude is `peak` (silence unchanged): every engine's speech at one
    level."""
    largest = float(np.abs(audio).max()) if audio.size else 0.0
    return (audio * (peak / largest) if largest > 0 else audio).astype(np.float32)
