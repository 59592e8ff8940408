"""A ctypes binding of libespeak-ng (shipped by the ``espeakng-loader`` wheel): text -> int16 samples in memory.

libespeak-ng keeps global state, so there is one engine per process, created on first use (never at import).
"""

from __future__ import annotations

import ctypes
import functools
from typing import Any

import numpy as np

from ..errors import ConfigError, ReadError

__all__ = ["EspeakEngine", "engine", "espeak_data_path"]

_AUDIO_OUTPUT_SYNCHRONOUS = 2
_ESPEAK_RATE = 1
_ESPEAK_PITCH = 3
_ESPEAK_RANGE = 4
_POS_CHARACTER = 1
_ESPEAK_CHARS_UTF8 = 1
_EE_OK = 0

_CALLBACK = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.c_void_p)


def _loader() -> Any:
    try:
        import espeakng_loader
    except ImportError as err:
        raise ConfigError(
            "synthetic speech needs the espeakng-loader wheel: pip install 'carbon-callbacks[demo]'"
        ) from err
    return espeakng_loader


def espeak_data_path() -> str:
    """Directory of the espeak-ng data (voices, dictionaries) inside the wheel."""
    return str(_loader().get_data_path())


class EspeakEngine:
    """Renders text with a voice at a rate (words per minute) and pitch (0-100, 50 = voice default)."""

    def __init__(self) -> None:
        loader = _loader()
        path = loader.get_library_path()
        try:
            lib = ctypes.CDLL(path)
        except OSError as err:
            raise ReadError(f"cannot load {path}: {err}") from err
        lib.espeak_Initialize.restype = ctypes.c_int
        lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
        lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
        lib.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
        lib.espeak_ng_SetRandSeed.argtypes = [ctypes.c_long]
        lib.espeak_Synth.argtypes = [
            ctypes.c_void_p, ctypes.c_size_t, ctypes.c_uint, ctypes.c_int,
            ctypes.c_uint, ctypes.c_uint, ctypes.c_void_p, ctypes.c_void_p,
        ]
        rate_hz = lib.espeak_Initialize(_AUDIO_OUTPUT_SYNCHRONOUS, 0, loader.get_data_path().encode(), 0)
        if rate_hz <= 0:
            raise ReadError(f"espeak_Initialize failed ({rate_hz}) with data {loader.get_data_path()}")
        self.sample_rate_hz = int(rate_hz)
        self._lib = lib
        self._chunks: list[np.ndarray] = []
        self._callback = _CALLBACK(self._collect)  # kept alive as long as the engine
        lib.espeak_SetSynthCallback(self._callback)

    def _collect(self, wav: Any, n_samples: int, _events: Any) -> int:
        if n_samples > 0:
            self._chunks.append(np.ctypeslib.as_array(wav, shape=(n_samples,)).copy())
        return 0

    def render(
        self, text: str, voice: str, rate_wpm: int = 175, pitch: int = 50, pitch_range: int = 50, seed: int = 0,
    ) -> np.ndarray:
        """Speak ``text`` with ``voice`` (e.g. ``"en-us+m3"``); int16 samples at :attr:`sample_rate_hz`.

        ``seed`` seeds espeak-ng's own random generator (it is seeded from the clock otherwise).
        """
        self._lib.espeak_ng_SetRandSeed(int(seed))
        if self._lib.espeak_SetVoiceByName(voice.encode()) != _EE_OK:
            raise ConfigError(f"voice={voice!r} is not an espeak-ng voice: see carbon_callbacks.synth.english_voices()")
        for param, value in ((_ESPEAK_RATE, rate_wpm), (_ESPEAK_PITCH, pitch), (_ESPEAK_RANGE, pitch_range)):
            self._lib.espeak_SetParameter(param, int(value), 0)
        data = text.encode() + b"\0"
        self._chunks = []
        status = self._lib.espeak_Synth(data, len(data), 0, _POS_CHARACTER, 0, _ESPEAK_CHARS_UTF8, None, None)
        if status != _EE_OK or not self._chunks:
            raise ConfigError(f"espeak-ng could not render text={text!r} with voice={voice!r} (status {status})")
        return np.concatenate(self._chunks)


@functools.lru_cache(maxsize=1)
def engine() -> EspeakEngine:
    """The process-wide engine (libespeak-ng is a singleton)."""
    return EspeakEngine()
