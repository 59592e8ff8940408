"""Audio helpers in numpy only: band-limited resampling, seeded noise, 16-bit wav files."""

from __future__ import annotations

import wave
from pathlib import Path

import numpy as np

__all__ = ["TARGET_RATE_HZ", "resample", "add_noise", "write_wav", "read_wav"]

TARGET_RATE_HZ = 16_000


def resample(samples: np.ndarray, rate_hz: int, target_hz: int = TARGET_RATE_HZ) -> np.ndarray:
    """FFT resampling of int16 or float samples to float32 in [-1, 1] at ``target_hz``."""
    x = samples.astype(np.float64)
    if np.issubdtype(samples.dtype, np.integer):
        x /= 32768.0
    if rate_hz == target_hz:
        return x.astype(np.float32)
    n_out = int(round(len(x) * target_hz / rate_hz))
    spectrum = np.fft.rfft(x)[: n_out // 2 + 1]
    return (np.fft.irfft(spectrum, n_out) * (n_out / len(x))).astype(np.float32)


def add_noise(x: np.ndarray, snr_db: float, rng: np.random.Generator) -> np.ndarray:
    """Add white Gaussian noise at ``snr_db`` relative to the signal's mean power."""
    power = float(np.mean(x.astype(np.float64) ** 2))
    if power == 0.0:
        return x
    noise = rng.standard_normal(len(x)) * np.sqrt(power / 10 ** (snr_db / 10))
    return (x + noise).astype(np.float32)


def write_wav(path: Path, x: np.ndarray, rate_hz: int = TARGET_RATE_HZ) -> None:
    """Write mono float samples as a 16-bit PCM wav, peak-limited to avoid clipping."""
    peak = float(np.max(np.abs(x))) if len(x) else 0.0
    scale = 0.9 / peak if peak > 0.9 else 1.0
    pcm = np.clip(np.round(x * scale * 32767), -32768, 32767).astype("<i2")
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate_hz)
        out.writeframes(pcm.tobytes())


def read_wav(path: Path) -> tuple[np.ndarray, int]:
    """Read a 16-bit mono wav written by :func:`write_wav`: float32 samples and the rate in Hz."""
    with wave.open(str(path), "rb") as src:
        rate_hz = src.getframerate()
        pcm = np.frombuffer(src.readframes(src.getnframes()), dtype="<i2")
    return pcm.astype(np.float32) / 32768.0, rate_hz
