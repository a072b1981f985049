"""Signal-processing primitives of the audio families, in numpy and scipy.

Each gives librosa 0.11's result bit for bit (``tests/test_dsp.py`` compares them) without
importing librosa, whose core modules build numba kernels on import: a second of start-up
in every extraction and every ``predict``, and a numba cache that processes must not write at
once.  The window and the Savitzky-Golay derivative are scipy.signal's, also bit for bit,
without importing scipy.signal (half a second, with the scipy.stats it loads).  The formulas
are librosa's and scipy's; the references are those their documentation gives.
"""

import math

import numpy as np
import scipy.linalg
import scipy.ndimage

BLOCK_BYTES = 2**18
"""Bytes of frames :func:`power_spectrogram` transforms at once (librosa's block size)."""


def frame(x, frame_length: int, hop_length: int) -> np.ndarray:
    """Overlapping frames of ``x`` [shape=(n,)], as a read-only view (``librosa.util.frame``).

    Returns
    -------
    np.ndarray [shape=(frame_length, 1 + (n - frame_length) // hop_length)]
        Column ``j`` is ``x[j * hop_length : j * hop_length + frame_length]``.
    """
    windows = np.lib.stride_tricks.sliding_window_view(x, frame_length)
    return windows[::hop_length].T


def power_spectrogram(frames) -> np.ndarray:
    """|STFT|^2 of ``frames`` [shape=(n_fft, t)] under a periodic Hann window.

    As ``np.abs(librosa.stft(..., center=False)) ** 2``: the FFT in float64, the spectrum
    stored as complex64 for float32 input, then squared.

    Returns
    -------
    np.ndarray [shape=(1 + n_fft // 2, t)]
    """
    n_fft, n_frames = frames.shape
    window = hann(n_fft)[:, np.newaxis]
    spectrum = np.empty((1 + n_fft // 2, n_frames), np.result_type(frames.dtype, np.complex64))
    step = max(1, BLOCK_BYTES // (n_fft * frames.itemsize))  # blocks of frames stay in cache
    for start in range(0, n_frames, step):
        spectrum[:, start : start + step] = np.fft.rfft(window * frames[:, start : start + step], axis=0)
    return np.abs(spectrum) ** 2


def power_to_db(power, amin: float) -> np.ndarray:
    """``10 log10(max(power, amin))``: dB re 1, no clipping (``librosa.power_to_db`` with
    ``ref=1``, ``top_db=None``)."""
    return 10.0 * np.log10(np.maximum(amin, power))


def max_normalise(S, axis: int = 0) -> np.ndarray:
    """``S`` scaled to a maximum magnitude of 1 along ``axis``; all-zero slices (below the
    smallest normal float) stay as they are (``librosa.util.normalize(norm=np.inf)``)."""
    length = np.max(np.abs(S).astype(float), axis=axis, keepdims=True)
    length[length < np.finfo(S.dtype).tiny] = 1.0
    normalised = np.empty_like(S)
    normalised[:] = S / length
    return normalised


def hann(n: int) -> np.ndarray:
    """Periodic Hann window of ``n`` samples, for spectral analysis
    (``scipy.signal.get_window("hann", n)``): the symmetric window of n + 1, last sample dropped.

    Returns
    -------
    np.ndarray [shape=(n,), dtype=float64]
    """
    return (0.5 + 0.5 * np.cos(np.linspace(-np.pi, np.pi, n + 1)))[:n]


def delta(data, *, width: int, order: int, mode: str) -> np.ndarray:
    """Savitzky-Golay derivative of ``data`` [shape=(d, t)] along time: the ``order``-th
    derivative of a polynomial of degree ``order`` fitted over ``width`` frames
    (``librosa.feature.delta``, i.e. ``scipy.signal.savgol_filter``).

    ``mode="interp"`` fits one polynomial to each edge's first (last) ``width`` frames for the
    frames within half a window of it; another mode (e.g. ``"nearest"``) extends the sequence
    as ``scipy.ndimage.convolve1d`` does.

    Savitzky, A., & Golay, M. J. E. (1964). Smoothing and differentiation of data by
    simplified least squares procedures. Analytical Chemistry, 36(8), 1627-1639.
    """
    data = np.asarray(data)
    if data.dtype not in (np.float32, np.float64):
        data = data.astype(np.float64)
    half = width // 2
    # Convolution weights: the least-squares fit evaluated at the window's centre.
    positions = np.arange(-half, width - half, dtype=np.float64)[::-1]
    powers = positions ** np.arange(order + 1, dtype=np.float64).reshape(-1, 1)
    target = np.zeros(order + 1)
    target[order] = float(math.factorial(order))
    weights = scipy.linalg.lstsq(powers, target, cond=np.finfo(np.float64).eps * max(powers.shape))[0]
    if mode != "interp":
        return scipy.ndimage.convolve1d(data, weights, axis=-1, mode=mode)
    derivative = scipy.ndimage.convolve1d(data, weights, axis=-1, mode="constant")
    n = data.shape[-1]
    for start, first, stop in ((0, 0, half), (n - width, n - half, n)):
        derivative[..., first:stop] = _edge_derivative(data[..., start : start + width], first - start,
                                                       stop - start, order)
    return derivative


def _edge_derivative(window, first: int, stop: int, order: int) -> np.ndarray:
    """The ``order``-th derivative, at frames ``first`` to ``stop`` of ``window`` [shape=(d,
    width)], of the polynomial of degree ``order`` fitted to each row (scipy's ``polyfit``
    with scaled columns, then ``polyder`` and Horner's ``polyval``)."""
    rows = window.reshape(-1, window.shape[-1]).T  # (width, d)
    t = np.arange(0, window.shape[-1], dtype=window.dtype)
    powers = np.flip(np.arange(order + 1, dtype=window.dtype))
    design = t[:, None] ** powers[None, :]
    scale = np.sqrt(np.sum(design * design, axis=0))
    design /= scale
    coefficients = scipy.linalg.lstsq(design, rows, cond=len(t) * np.finfo(t.dtype).eps)[0]
    coefficients = (coefficients.T / scale).T  # highest power first
    derived = np.array(coefficients[:-order], copy=True)
    for factor in range(order, 0, -1):  # d^order/dt^order of t^order is order!
        derived *= factor
    at = np.arange(first, stop, dtype=derived.dtype).reshape(-1, 1)
    values = np.zeros_like(at)
    for row in derived:
        values = values * at + row
    return values.T.reshape(*window.shape[:-1], stop - first)


def hz_to_mel(frequencies) -> np.ndarray:
    """Slaney's mel scale: linear (3 mels per 200 Hz) below 1 kHz, logarithmic above.

    Slaney, M. (1998). Auditory toolbox, version 2. Interval Research Corporation Tech. Rep. 10.
    """
    frequencies = np.asanyarray(frequencies)
    mels = frequencies / (200.0 / 3)
    log_region = frequencies >= 1000.0
    mels[log_region] = 1000.0 / (200.0 / 3) + np.log(frequencies[log_region] / 1000.0) / (np.log(6.4) / 27.0)
    return mels


def mel_to_hz(mels) -> np.ndarray:
    """Inverse of :func:`hz_to_mel` (Hz)."""
    mels = np.asanyarray(mels)
    frequencies = (200.0 / 3) * mels
    log_region = mels >= 1000.0 / (200.0 / 3)
    frequencies[log_region] = 1000.0 * np.exp(np.log(6.4) / 27.0 * (mels[log_region] - 1000.0 / (200.0 / 3)))
    return frequencies


def mel_filters(sr: float, n_fft: int, n_mels: int) -> np.ndarray:
    """Slaney-normalised triangular mel filters from 0 Hz to sr/2 (``librosa.filters.mel``).

    Each filter has unit area in Hz (``norm="slaney"``): band energies of white noise are
    then constant across bands.

    Returns
    -------
    np.ndarray [shape=(n_mels, 1 + n_fft // 2), dtype=float32]
    """
    fft_frequencies = np.fft.rfftfreq(n=n_fft, d=1.0 / sr)
    edges = mel_to_hz(np.linspace(hz_to_mel(np.array([0.0]))[0], hz_to_mel(np.array([sr / 2]))[0], n_mels + 2))
    widths = np.diff(edges)
    ramps = np.subtract.outer(edges, fft_frequencies)
    weights = np.zeros((n_mels, 1 + n_fft // 2), dtype=np.float32)
    for i in range(n_mels):
        weights[i] = np.maximum(0, np.minimum(-ramps[i] / widths[i], ramps[i + 2] / widths[i + 1]))
    weights *= (2.0 / (edges[2 : n_mels + 2] - edges[:n_mels]))[:, np.newaxis]
    return weights


def chroma_filters(sr: float, n_fft: int, n_chroma: int = 12) -> np.ndarray:
    """Gaussian pitch-class filters at A440 tuning, rows from C (``librosa.filters.chroma``
    with its defaults: unit L2 norm per FFT bin, octave weighting centred on octave 5 (A0 =
    27.5 Hz) with a half-width of 2 octaves).

    Ellis, D. P. W. (2007). Chroma feature analysis and synthesis.

    Returns
    -------
    np.ndarray [shape=(n_chroma, 1 + n_fft // 2), dtype=float32]
    """
    frequencies = np.linspace(0, sr, n_fft, endpoint=False)[1:]
    bins = n_chroma * np.log2(frequencies / (440.0 / 16))
    bins = np.concatenate(([bins[0] - 1.5 * n_chroma], bins))
    bin_widths = np.concatenate((np.maximum(bins[1:] - bins[:-1], 1.0), [1]))
    distance = np.subtract.outer(bins, np.arange(0, n_chroma, dtype="d")).T
    half = np.round(float(n_chroma) / 2)
    distance = np.remainder(distance + half + 10 * n_chroma, n_chroma) - half
    weights = np.exp(-0.5 * (2 * distance / np.tile(bin_widths, (n_chroma, 1))) ** 2)
    norms = np.sum(np.abs(weights) ** 2, axis=0, keepdims=True) ** 0.5
    norms[norms < np.finfo(weights.dtype).tiny] = 1.0
    weights = weights / norms
    weights *= np.tile(np.exp(-0.5 * ((bins / n_chroma - 5.0) / 2) ** 2), (n_chroma, 1))
    weights = np.roll(weights, -3 * (n_chroma // 12), axis=0)
    return np.ascontiguousarray(weights[:, : int(1 + n_fft / 2)], dtype=np.float32)
