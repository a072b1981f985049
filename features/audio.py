"""Frame-level audio features on one common clock, and the eGeMAPS clip functionals.

Every frame-level family frames the signal the same way: a frame of ``frame_length``
samples is centred on sample ``i * hop_length`` (the signal is zero-padded by half a frame
at both ends, librosa's ``center=True``).  A clip of ``n`` samples therefore gives
``t = 1 + n // hop_length`` frames in every family, whatever window length the family
uses, and frame ``i`` of every family describes the same instant ``i * hop_length / sr``.
Frame lengths must be even for this to hold.  A signal shorter than one frame is padded
like any other and gives ``t >= 1`` frames.

Silent input gives finite values everywhere (energies and spectra at a -100 dB floor)
except F0, which is NaN on every unvoiced frame.
"""

import dataclasses
import functools
import numbers

import numpy as np
import opensmile
import scipy.fft

from features import dsp
from features.errors import FeatureError
from features.stream import Stream

FLOOR_DB = -100.0
"""Floor of every dB value (log energy, log-mel): 10 log10 of a mean square of 1e-10."""

PITCH_BLOCK = 1024
"""Frames :func:`pitch` analyses at once, which bounds its memory (a few MB)."""

STREAM_FAMILIES = ("mfcc", "zcr", "pitch", "energy", "chroma", "mel", "spectral", "envelope", "mcr", "pitch_acf",
                   "egemaps_lld")
"""Frame-level audio families :func:`audio_streams` can compute (each also gets functionals)."""

CLIP_FAMILIES = ("egemaps", "compare")
"""Clip-level audio families (no frame-level stream), computed by :func:`clip_features`;
``compare`` (6,373 values) is opt-in."""

SIGNAL_FAMILIES = ("waveform",)
"""Sample-level audio families, computed by :func:`signal_streams`: the signal itself at its own
rate (``AudioConfig.waveform_sr``), off the frame clock, for networks that read raw audio
(Mamieva et al.'s waveform encoder).  Opt-in."""

OPT_IN_FAMILIES = ("spectral", "envelope", "mcr", "pitch_acf", "egemaps_lld") + SIGNAL_FAMILIES
"""Families computed only when ``AudioConfig.families`` names them (OMSN-ER's time- and
frequency-domain parameters, DV-EmotionNet's autocorrelation pitch, eGeMAPS's low-level
descriptors, which cost as much again as the eGeMAPS functionals, the raw waveform; kept out
of the default store)."""

DEFAULT_FAMILIES = tuple(f for f in STREAM_FAMILIES if f not in OPT_IN_FAMILIES) + ("egemaps",)
"""Audio families computed unless ``AudioConfig.families`` says otherwise."""

EGEMAPS_F0 = "F0semitoneFrom27.5Hz_sma3nz"
"""eGeMAPS's F0 descriptor (semitones above 27.5 Hz; 0 on unvoiced frames)."""

EGEMAPS_LLD_HOP_S, EGEMAPS_LLD_WINDOW_S = 0.010, 0.060
"""openSMILE's hop of the eGeMAPS low-level descriptors and their longest window (F0, jitter,
shimmer), in seconds, whatever ``AudioConfig``'s clock."""

ROLLOFF_FRACTION = 0.85
"""Share of the spectral magnitude below the roll-off frequency (librosa's and the field's 85 %)."""

CHROMA_NAMES = ["C", "Cs", "D", "Ds", "E", "F", "Fs", "G", "Gs", "A", "As", "B"]
"""Pitch classes of the chroma rows, from C; ``s`` marks a sharp (``Cs`` is C sharp)."""


@dataclasses.dataclass(frozen=True)
class AudioConfig:
    """Parameters of every audio feature family; stored beside the features they make.

    Attributes
    ----------
    sr : int
        Sampling rate the signal must have (Hz).
    frame_length : int
        Window of MFCC, log-mel, zero-crossing rate and energy (samples; 25 ms).
    hop_length : int
        Hop of every family, the common clock (samples; 10 ms).
    n_mfcc : int
        Number of cepstral coefficients (each also gets a delta and a delta-delta).
    n_mels : int
        Mel bands of the log-mel spectrogram, from which the MFCCs are computed.
    delta_width : int
        Odd number of frames of the Savitzky-Golay window for deltas.
    fmin, fmax : float
        Pitch search range (Hz).
    pitch_frame_length : int
        Window of the pitch tracker (samples; 64 ms), long enough for two periods of ``fmin``.
    voicing_threshold : float
        A frame is voiced when its YIN aperiodicity (the normalised difference at the
        chosen period, 0 for a periodic signal, about 1 for noise) is below this.  0.35
        agreed best with pYIN's voicing on real RAVDESS speech (89 % of frames).
    chroma_frame_length : int
        Window of the chromagram (samples; 96 ms, the duration of librosa's default
        2048 samples at 22.05 kHz that MM-EMOR used).
    waveform_sr : int
        Rate of the ``waveform`` family (Hz; 8 kHz, telephone band: the paper states no rate,
        and a network over raw samples costs in proportion to it).  Part of ``to_dict`` only
        when ``waveform`` is computed, so stores without it keep their configuration hash.
    families : tuple of str
        The families to compute, from ``STREAM_FAMILIES``, ``SIGNAL_FAMILIES`` and
        ``CLIP_FAMILIES`` (default ``DEFAULT_FAMILIES``; opt-in families are named here to be
        computed).
    """

    sr: int = 16000
    frame_length: int = 400
    hop_length: int = 160
    n_mfcc: int = 40
    n_mels: int = 64
    delta_width: int = 9
    fmin: float = 60.0
    fmax: float = 500.0
    pitch_frame_length: int = 1024
    voicing_threshold: float = 0.35
    chroma_frame_length: int = 1536
    waveform_sr: int = 8000
    families: tuple = DEFAULT_FAMILIES

    def __post_init__(self):
        object.__setattr__(self, "families", tuple(self.families))
        known = STREAM_FAMILIES + SIGNAL_FAMILIES + CLIP_FAMILIES
        unknown = sorted(set(self.families) - set(known))
        if unknown or not self.families:
            raise FeatureError(
                f"AudioConfig.families: unknown or no family {unknown or ''}; known: "
                f"{', '.join(known)}"
            )
        _check_rate(self.sr)
        _check_waveform_rate(self.sr, self.waveform_sr)
        for length in (self.frame_length, self.pitch_frame_length, self.chroma_frame_length):
            _check_framing(length, self.hop_length)
        if not 0 < self.n_mfcc <= self.n_mels:
            raise FeatureError(
                f"AudioConfig needs 0 < n_mfcc <= n_mels, got n_mfcc={self.n_mfcc}, "
                f"n_mels={self.n_mels}"
            )
        _check_delta_width(self.delta_width)
        _check_pitch_range(self.sr, self.fmin, self.fmax, self.pitch_frame_length)

    def to_dict(self) -> dict:
        """The parameters as a JSON-serialisable dict (families as a list; ``waveform_sr`` only
        when ``waveform`` is computed)."""
        settings = dataclasses.asdict(self) | {"families": list(self.families)}
        if "waveform" not in self.families:
            del settings["waveform_sr"]
        return settings


def mfcc(y, sr, *, n_mfcc=40, n_mels=64, frame_length=400, hop_length=160, delta_width=9):
    """Mel-frequency cepstral coefficients with their first and second deltas.

    The coefficients are the orthonormal DCT-II of the log-mel spectrum in dB
    (:func:`log_mel`), as in librosa; the deltas are Savitzky-Golay derivatives over
    ``delta_width`` frames (:func:`delta`), in units per frame.

    Parameters
    ----------
    y : np.ndarray [shape=(n,)]
        Mono signal, finite floats.
    sr : number > 0
        Sampling rate (Hz).
    n_mfcc : int
        Number of coefficients, at most ``n_mels``.
    n_mels : int
        Mel bands the coefficients are computed from.
    frame_length, hop_length : int
        Window and hop (samples).
    delta_width : int
        Odd window of the delta filter (frames).

    Returns
    -------
    np.ndarray [shape=(3 * n_mfcc, t)]
        Rows ``0 .. n_mfcc-1`` the coefficients, then their deltas, then their
        delta-deltas; ``t = 1 + n // hop_length``.
    """
    if not 0 < n_mfcc <= n_mels:
        raise FeatureError(f"mfcc needs 0 < n_mfcc <= n_mels, got {n_mfcc}, {n_mels}")
    spectrum = log_mel(y, sr, n_mels=n_mels, frame_length=frame_length, hop_length=hop_length)
    return _cepstra(spectrum, n_mfcc, delta_width)


def delta(data, *, width=9, order=1):
    """Derivative of a feature sequence along time (``librosa.feature.delta``), any length.

    A least-squares polynomial (Savitzky-Golay) fit over ``width`` frames; the edges are
    fitted too (``mode="interp"``), so a linear ramp gives its exact slope in every frame.
    Sequences shorter than ``width`` repeat their edge frames instead (``mode="nearest"``).

    Parameters
    ----------
    data : np.ndarray [shape=(d, t)]
        Feature sequence, one column per frame.
    width : int
        Odd number of frames of the fitting window, >= 3.
    order : int
        Order of the derivative (1: delta, 2: delta-delta).

    Returns
    -------
    np.ndarray [shape=(d, t)]
        Derivative in units of ``data`` per frame (per frame squared for ``order=2``).
    """
    _check_delta_width(width)
    mode = "interp" if data.shape[-1] >= width else "nearest"
    return dsp.delta(data, width=width, order=order, mode=mode)


def zero_crossing_rate(y, sr, *, frame_length=400, hop_length=160):
    """Fraction of neighbouring sample pairs in each frame whose signs differ.

    Z = (1/2N) sum_n |sgn(x_n) - sgn(x_{n-1})| with sgn(x) = +1 if x > 0 else -1 (a zero
    counts as negative), i.e. sign changes per sample: about 0.5 for white noise and
    ``2 f / sr`` for a tone of frequency f.  Written with s(x) in {0, 1}, as some papers do,
    the same sum would be halved; the {-1, +1} form is the standard one (Rabiner & Schafer)
    and librosa's.  Beyond its ends the signal repeats its edge samples, so the
    centring pad adds no crossings.

    Parameters
    ----------
    y : np.ndarray [shape=(n,)]
        Mono signal, finite floats.
    sr : number > 0
        Sampling rate (Hz); the rate itself does not depend on it.
    frame_length, hop_length : int
        Window N and hop (samples).

    Returns
    -------
    np.ndarray [shape=(1, t)]
        Zero-crossing rate in [0, 1) per frame.

    References
    ----------
    Rabiner, L. R., & Schafer, R. W. (1978). Digital Processing of Speech Signals, ch. 4.
    """
    y = _check_signal(y, sr)
    _check_framing(frame_length, hop_length)
    # 1. s(x_n), and a crossing wherever it changes between x_{n-1} and x_n.
    crossings = np.diff(y > 0, prepend=y[0] > 0)
    crossing_count = np.concatenate([[0], np.cumsum(crossings)])
    # 2. Frame i holds samples [start, start + N); count the pairs (n - 1, n) inside it.
    start = np.arange(1 + y.size // hop_length) * hop_length - frame_length // 2
    first = np.clip(start + 1, 0, y.size)
    stop = np.clip(start + frame_length, 0, y.size)
    # 3. Z = crossings / N.
    return ((crossing_count[stop] - crossing_count[first]) / frame_length)[np.newaxis]


def pitch(
    y,
    sr,
    *,
    fmin=60.0,
    fmax=500.0,
    frame_length=1024,
    hop_length=160,
    threshold=0.1,
    voicing_threshold=0.35,
):
    """Fundamental frequency by YIN, with a voicing decision from its aperiodicity.

    YIN refines the autocorrelation pitch estimate of DV-EmotionNet: the period is the
    first deep dip of the cumulative mean normalised difference d'(tau) of the frame with
    itself delayed by tau.  The depth of that dip, the aperiodicity (0 for a periodic
    frame, about 1 for noise), decides voicing.  Frames with a mean square below the
    -100 dB floor are unvoiced.  Step 6 of YIN (best local estimate) is left out.

    Parameters
    ----------
    y : np.ndarray [shape=(n,)]
        Mono signal, finite floats.
    sr : number > 0
        Sampling rate (Hz).
    fmin, fmax : float
        Search range of F0 (Hz).
    frame_length : int
        Analysis window (samples); at least ``2 * (ceil(sr / fmin) + 2)`` so the
        integration window W holds the longest period.
    hop_length : int
        Hop (samples).
    threshold : float
        YIN's absolute threshold on d' for picking the first dip (step 4).
    voicing_threshold : float
        Largest aperiodicity of a voiced frame.

    Returns
    -------
    f0 : np.ndarray [shape=(t,), dtype=float32]
        F0 in Hz, NaN on unvoiced frames.
    voiced : np.ndarray [shape=(t,), dtype=bool]
        Voicing decision per frame.

    References
    ----------
    de Cheveigné, A., & Kawahara, H. (2002). YIN, a fundamental frequency estimator for
    speech and music. J. Acoust. Soc. Am., 111(4), 1917-1930.
    """
    y = _check_signal(y, sr)
    _check_framing(frame_length, hop_length)
    _check_pitch_range(sr, fmin, fmax, frame_length)
    frames = _centred_frames(y, frame_length, hop_length).T
    # Frames are independent: blocks of them bound the memory that the per-lag arrays
    # would otherwise take for the whole clip (2.6 MB per second of 16 kHz audio).
    blocks = [
        _yin(frames[start : start + PITCH_BLOCK], sr, fmin, fmax, threshold, voicing_threshold)
        for start in range(0, len(frames), PITCH_BLOCK)
    ]
    return np.concatenate([f0 for f0, _ in blocks]), np.concatenate([v for _, v in blocks])


def _yin(frames, sr, fmin, fmax, threshold, voicing_threshold):
    """YIN steps 1-6 of :func:`pitch` on a block of frames [shape=(b, frame_length)]."""
    frame_length = frames.shape[1]
    min_lag, max_lag = int(sr // fmax), int(np.ceil(sr / fmin))
    lags = np.arange(max_lag + 2)  # one lag beyond the range, for the interpolation
    window = frame_length - lags[-1]  # W: x_j x_{j + tau} stays inside the frame
    # 1. Autocorrelation r(tau) = sum_{j < W} x_j x_{j+tau} (eq. 1), by FFT; j + tau < N,
    #    so the circular correlation does not wrap.
    spectrum = scipy.fft.rfft(frames, axis=1)
    head_spectrum = scipy.fft.rfft(frames[:, :window], n=frame_length, axis=1)
    autocorrelation = scipy.fft.irfft(spectrum * head_spectrum.conj(), n=frame_length, axis=1)
    # 2. Difference d(tau) = r_0(0) + r_tau(0) - 2 r(tau) (eq. 7), where r_tau(0) is the
    #    energy of x_tau .. x_{tau+W-1}, from the running energy within each frame.
    energy_before = np.zeros((len(frames), frame_length + 1))
    np.cumsum(np.square(frames, dtype=np.float64), axis=1, out=energy_before[:, 1:])
    shifted_energy = energy_before[:, lags + window] - energy_before[:, lags]
    difference = shifted_energy[:, :1] + shifted_energy - 2 * autocorrelation[:, lags]
    difference = np.maximum(difference, 0)
    # 3. Cumulative mean normalised difference d'(tau) = d(tau) / ((1/tau) sum_{j=1}^{tau}
    #    d(j)), d'(0) = 1 (eq. 8); a frame without any difference is aperiodic (d' = 1).
    running_mean = np.cumsum(difference[:, 1:], axis=1) / lags[1:]
    normalised = np.ones_like(difference)
    np.divide(difference[:, 1:], running_mean, out=normalised[:, 1:], where=running_mean > 0)
    # 4. Absolute threshold: the smallest lag in range at a local minimum of d' below
    #    `threshold`; when there is none, the global minimum in range.
    in_range = normalised[:, min_lag : max_lag + 1]
    is_dip = (
        (in_range < threshold)
        & (in_range <= normalised[:, min_lag - 1 : max_lag])
        & (in_range < normalised[:, min_lag + 1 : max_lag + 2])
    )
    lag = min_lag + np.where(is_dip.any(axis=1), is_dip.argmax(axis=1), in_range.argmin(axis=1))
    # 5. Parabolic interpolation of d' around the chosen lag.
    rows = np.arange(len(frames))
    before, at, after = (normalised[rows, lag + step] for step in (-1, 0, 1))
    curvature = before - 2 * at + after
    shift = np.divide(before - after, 2 * curvature, out=np.zeros_like(at), where=curvature > 0)
    period = lag + np.clip(shift, -1, 1)
    # 6. Voicing: a deep enough dip, in a frame above the energy floor.
    loud = shifted_energy[:, 0] / window > 10 ** (FLOOR_DB / 10)
    voiced = (at < voicing_threshold) & loud
    f0 = np.where(voiced, sr / period, np.nan).astype(np.float32)
    return f0, voiced


def pitch_autocorrelation(
    y, sr, *, fmin=60.0, fmax=500.0, frame_length=1024, hop_length=160, voicing_threshold=0.45
):
    """Fundamental frequency from the peak of the windowed autocorrelation (DV-EmotionNet).

    Per frame, the short-time autocorrelation of the Hann-windowed frame,
    R(tau) = (1/N) sum_n w[n] x[n] w[n + tau] x[n + tau], as Dommeti et al. (2024) define
    pitch; the period is the lag of the highest local maximum of R within
    [sr / fmax, sr / fmin], refined by parabolic interpolation.  The paper gives no voicing
    rule, so the field's is used (Boersma 1993, Praat's default): a frame is voiced when that
    peak, normalised by R(0), is at least ``voicing_threshold`` and the frame's mean square is
    above the -100 dB floor.  Unlike YIN (:func:`pitch`) nothing corrects the taper of the
    window, which lowers R at long lags (the estimator is biased toward short periods).

    Parameters
    ----------
    y : np.ndarray [shape=(n,)]
        Mono signal, finite floats.
    sr : number > 0
        Sampling rate (Hz).
    fmin, fmax : float
        Search range of F0 (Hz).
    frame_length : int
        Analysis window (samples); at least two periods of ``fmin``.
    hop_length : int
        Hop (samples).
    voicing_threshold : float
        Smallest normalised autocorrelation peak R(T) / R(0) of a voiced frame, in (0, 1).

    Returns
    -------
    f0 : np.ndarray [shape=(t,), dtype=float32]
        F0 in Hz, NaN on unvoiced frames.
    voiced : np.ndarray [shape=(t,), dtype=bool]
        Voicing decision per frame.

    References
    ----------
    Dommeti, Nallapati & Alfaris (2024), DV-EmotionNet, audio features (pitch).
    Boersma, P. (1993). Accurate short-term analysis of the fundamental frequency and the
    harmonics-to-noise ratio of a sampled sound. Proc. Inst. Phonetic Sciences 17, 97-110.
    """
    y = _check_signal(y, sr)
    _check_framing(frame_length, hop_length)
    _check_pitch_range(sr, fmin, fmax, frame_length)
    if not 0 < voicing_threshold < 1:
        raise FeatureError(f"voicing_threshold must be in (0, 1), got {voicing_threshold!r}")
    frames = _centred_frames(y, frame_length, hop_length).T * np.hanning(frame_length).astype(np.float32)
    min_lag, max_lag = int(sr // fmax), int(np.ceil(sr / fmin))
    f0, voiced = [], []
    for start in range(0, len(frames), PITCH_BLOCK):
        block = frames[start : start + PITCH_BLOCK].astype(np.float64)
        # 1. R(tau) by FFT, zero-padded to 2N so the circular correlation does not wrap.
        spectrum = scipy.fft.rfft(block, n=2 * frame_length, axis=1)
        r = scipy.fft.irfft(np.abs(spectrum) ** 2, axis=1)[:, : max_lag + 2] / frame_length
        # 2. Normalise by R(0); a silent frame has no peak.
        energy_0 = r[:, :1]
        r = np.divide(r, energy_0, out=np.zeros_like(r), where=energy_0 > 0)
        # 3. Highest local maximum within the lag range.
        in_range = r[:, min_lag : max_lag + 1]
        is_peak = (in_range >= r[:, min_lag - 1 : max_lag]) & (in_range > r[:, min_lag + 1 : max_lag + 2])
        peaks = np.where(is_peak, in_range, -np.inf)
        lag = min_lag + peaks.argmax(axis=1)
        height = peaks.max(axis=1)
        # 4. Parabolic interpolation around the peak.
        rows = np.arange(len(block))
        before, at, after = (r[rows, lag + step] for step in (-1, 0, 1))
        curvature = before - 2 * at + after
        shift = np.divide(before - after, 2 * curvature, out=np.zeros_like(at), where=curvature < 0)
        period = lag + np.clip(shift, -1, 1)
        # 5. Voicing: a high enough peak in a frame above the energy floor.
        loud = np.mean(np.square(block), axis=1) > 10 ** (FLOOR_DB / 10)
        is_voiced = (height >= voicing_threshold) & loud
        f0.append(np.where(is_voiced, sr / period, np.nan).astype(np.float32))
        voiced.append(is_voiced)
    return np.concatenate(f0), np.concatenate(voiced)


def energy(y, sr, *, frame_length=400, hop_length=160):
    """Root-mean-square amplitude and log energy per frame.

    Parameters
    ----------
    y : np.ndarray [shape=(n,)]
        Mono signal, finite floats (full scale 1).
    sr : number > 0
        Sampling rate (Hz).
    frame_length, hop_length : int
        Window N and hop (samples).

    Returns
    -------
    np.ndarray [shape=(2, t)]
        Row 0: RMS = sqrt((1/N) sum_n x_n^2), in full-scale units.  Row 1: log energy
        10 log10((1/N) sum_n x_n^2) in dB re full scale, floored at -100 dB (silence).
    """
    y = _check_signal(y, sr)
    _check_framing(frame_length, hop_length)
    mean_square = np.mean(np.square(_centred_frames(y, frame_length, hop_length)), axis=0)
    # Floored after the logarithm: 1e-10 in float32 is a little under 1e-10 (-100.00001 dB).
    log_energy = np.maximum(10 * np.log10(np.maximum(mean_square, 10 ** (FLOOR_DB / 10))), FLOOR_DB)
    return np.stack([np.sqrt(mean_square), log_energy])


def chroma(y, sr, *, frame_length=1536, hop_length=160):
    """Chromagram: the power spectrum folded onto the 12 pitch classes.

    As ``librosa.feature.chroma_stft``: librosa's chroma filters over the power spectrum
    of a Hann-windowed STFT, with tuning fixed at A440 (speech has no tuning to
    estimate), each frame scaled to a maximum of 1; a silent frame stays 0.

    Parameters
    ----------
    y : np.ndarray [shape=(n,)]
        Mono signal, finite floats.
    sr : number > 0
        Sampling rate (Hz).
    frame_length : int
        Window (samples); a long one (96 ms at 16 kHz) separates the voice's harmonics.
    hop_length : int
        Hop (samples).

    Returns
    -------
    np.ndarray [shape=(12, t)]
        Energy per pitch class, rows C, C#, ..., B (:data:`CHROMA_NAMES`), in [0, 1].
    """
    power = _power_spectrogram(y, sr, frame_length, hop_length)
    pitch_classes = _chroma_filters(float(sr), frame_length) @ power
    return dsp.max_normalise(pitch_classes, axis=0)


def log_mel(y, sr, *, n_mels=64, frame_length=400, hop_length=160):
    """Log-mel power spectrogram.

    Slaney mel filters from 0 Hz to sr/2 over the power spectrum of a Hann-windowed
    STFT, in dB re full scale (``10 log10``), floored at -100 dB.

    Parameters
    ----------
    y : np.ndarray [shape=(n,)]
        Mono signal, finite floats.
    sr : number > 0
        Sampling rate (Hz).
    n_mels : int
        Number of mel bands.
    frame_length, hop_length : int
        Window and hop (samples).

    Returns
    -------
    np.ndarray [shape=(n_mels, t)]
        Band energies in dB, bands from low to high.
    """
    power = _power_spectrogram(y, sr, frame_length, hop_length)
    bands = _mel_filters(float(sr), frame_length, n_mels) @ power
    # Floored after the logarithm, as in :func:`energy` (float32 rounding of the floor).
    return np.maximum(dsp.power_to_db(bands, amin=10 ** (FLOOR_DB / 10)), FLOOR_DB)


def spectral_shape(y, sr, *, frame_length=400, hop_length=160, rolloff=ROLLOFF_FRACTION):
    """FFT-based spectral parameters per frame: centroid, spread, roll-off, flux and flatness.

    Each frame is Hann-windowed and transformed with an FFT of ``N = frame_length`` points;
    ``|X_k|`` is the magnitude and ``P_k = |X_k|^2`` the power of bin ``k`` at frequency
    ``f_k = k sr / N``, for ``k = 0 .. N/2``.  As in librosa (and openSMILE's ``fftMag``
    parameters), centroid, spread and roll-off weight the bins by magnitude:

    - centroid ``C = sum_k f_k |X_k| / sum_k |X_k|`` (Hz);
    - spread ``S = sqrt(sum_k (f_k - C)^2 |X_k| / sum_k |X_k|)`` (Hz), the standard
      deviation of frequency around the centroid;
    - roll-off: the smallest ``f_k`` with ``sum_{j <= k} |X_j| >= rolloff * sum_j |X_j|`` (Hz);
    - flux ``sqrt(sum_k (m_k(t) - m_k(t-1))^2)`` with ``m = |X| / || |X| ||_2`` the magnitude
      spectrum scaled to unit norm, so that loudness alone does not count (unitless, in
      [0, sqrt 2]; 0 in the first frame, which has no predecessor);
    - flatness ``exp(mean_k ln P_k) / mean_k P_k``, geometric over arithmetic mean of the power
      spectrum with ``P_k`` floored at 1e-10 (unitless, in (0, 1]; 1 for a flat spectrum such
      as an impulse, near 0 for a tone, ``exp(-gamma) = 0.56`` on average for white noise,
      whose periodogram bins are exponentially distributed).

    A silent frame (no magnitude at all) has centroid, spread and roll-off 0 Hz, flatness 1
    and no flux into or out of it.

    Parameters
    ----------
    y : np.ndarray [shape=(n,)]
        Mono signal, finite floats.
    sr : number > 0
        Sampling rate (Hz).
    frame_length, hop_length : int
        Window and FFT size N, and hop (samples).
    rolloff : float
        Fraction of the magnitude below the roll-off frequency, in (0, 1).

    Returns
    -------
    np.ndarray [shape=(5, t)]
        Rows centroid (Hz), spread (Hz), roll-off (Hz), flux, flatness.

    References
    ----------
    Peeters, G. (2004). A large set of audio features for sound description (similarity and
    classification) in the CUIDADO project. IRCAM.
    """
    if not 0 < rolloff < 1:
        raise FeatureError(f"spectral roll-off fraction must be in (0, 1), got {rolloff!r}")
    power = _power_spectrogram(y, sr, frame_length, hop_length).astype(np.float64)
    magnitude = np.sqrt(power)
    frequencies = np.arange(len(magnitude))[:, np.newaxis] * (sr / frame_length)
    total = magnitude.sum(axis=0)
    sounding = total > 0
    weights = np.divide(magnitude, total, out=np.zeros_like(magnitude), where=sounding)
    # 1. Centroid and spread: mean and standard deviation of f_k under the weights |X_k| / sum.
    centroid = (frequencies * weights).sum(axis=0)
    spread = np.sqrt((np.square(frequencies - centroid) * weights).sum(axis=0))
    # 2. Roll-off: the first bin whose cumulative weight reaches the fraction.
    below = np.cumsum(weights, axis=0) >= rolloff
    rolloff_frequency = np.where(sounding, below.argmax(axis=0) * (sr / frame_length), 0.0)
    # 3. Flux between unit-norm magnitude spectra (a silent frame's is all zero: no flux).
    norm = np.linalg.norm(magnitude, axis=0)
    shape = np.divide(magnitude, norm, out=np.zeros_like(magnitude), where=norm > 0)
    flux = np.zeros_like(total)
    flux[1:] = np.linalg.norm(np.diff(shape, axis=1), axis=0)
    flux[1:] *= sounding[1:] & sounding[:-1]
    # 4. Flatness of the floored power spectrum (a silent frame is flat at the floor).
    floored = np.maximum(power, 1e-10)
    flatness = np.exp(np.log(floored).mean(axis=0)) / floored.mean(axis=0)
    return np.stack([centroid, spread, rolloff_frequency, flux, np.minimum(flatness, 1.0)])


def amplitude_envelope(y, sr, *, frame_length=400, hop_length=160):
    """Amplitude envelope: the peak of ``|x|`` in each frame, ``max_n |x_n|``.

    Parameters
    ----------
    y : np.ndarray [shape=(n,)]
        Mono signal, finite floats (full scale 1).
    sr : number > 0
        Sampling rate (Hz); the envelope does not depend on it.
    frame_length, hop_length : int
        Window N and hop (samples).

    Returns
    -------
    np.ndarray [shape=(1, t)]
        Peak absolute amplitude per frame, in full-scale units (a tone of amplitude A gives A).
    """
    y = _check_signal(y, sr)
    _check_framing(frame_length, hop_length)
    return np.abs(_centred_frames(y, frame_length, hop_length)).max(axis=0)[np.newaxis]


def mean_crossing_rate(y, sr, *, frame_length=400, hop_length=160):
    """Mean-crossing rate: the zero-crossing rate of each frame minus that frame's own mean.

    M = (1/2N) sum_n |sgn(x_n - mu) - sgn(x_{n-1} - mu)|, with ``mu`` the mean of the N
    samples of the frame and sgn as in :func:`zero_crossing_rate` (a value equal to the mean
    counts as below it).  The mean is taken per frame, not per clip, so a drifting offset or
    a slow swell is removed locally: a tone of frequency f on a DC offset gives ``2 f / sr``
    however large the offset, where its zero-crossing rate is 0.  As for the zero-crossing
    rate, the signal repeats its edge samples beyond its ends and only the N - 1 pairs inside
    a frame are counted.

    Parameters
    ----------
    y : np.ndarray [shape=(n,)]
        Mono signal, finite floats.
    sr : number > 0
        Sampling rate (Hz); the rate itself does not depend on it.
    frame_length, hop_length : int
        Window N and hop (samples).

    Returns
    -------
    np.ndarray [shape=(1, t)]
        Mean-crossing rate in [0, 1) per frame (crossings per sample).
    """
    y = _check_signal(y, sr)
    _check_framing(frame_length, hop_length)
    padded = np.pad(y, frame_length // 2, mode="edge")
    frames = dsp.frame(padded, frame_length, hop_length)
    above = frames > frames.mean(axis=0, dtype=np.float64)
    return (np.count_nonzero(np.diff(above, axis=0), axis=0) / frame_length)[np.newaxis]


def waveform(y, sr, *, target_sr=8000):
    """The signal resampled to ``target_sr``, the input of a network over raw samples.

    Polyphase resampling by the reduced ratio ``target_sr / sr`` with scipy's default
    anti-aliasing filter (``scipy.signal.resample_poly``: a Kaiser-windowed FIR, beta 5), so
    content above the new Nyquist frequency is removed rather than folded back.

    Parameters
    ----------
    y : np.ndarray [shape=(n,)]
        Mono signal, finite floats (full scale 1).
    sr : int
        Its sampling rate (Hz).
    target_sr : int
        Output rate (Hz), at most ``sr``.

    Returns
    -------
    np.ndarray [shape=(ceil(n * target_sr / sr),), dtype=float32]
        The resampled signal, in full-scale units; sample ``k`` is at ``k / target_sr`` s.
    """
    y = _check_signal(y, sr)
    _check_waveform_rate(sr, target_sr)
    divisor = np.gcd(int(sr), int(target_sr))
    up, down = int(target_sr) // divisor, int(sr) // divisor
    if up == down:
        return y.copy()
    import scipy.signal  # here only: it costs half a second of start-up, and the family is opt-in

    return scipy.signal.resample_poly(y, up, down).astype(np.float32)


def signal_streams(y, sr, config: AudioConfig) -> dict:
    """The sample-level audio families of ``config.families`` (those in ``SIGNAL_FAMILIES``).

    Returns
    -------
    dict of str to Stream
        ``waveform``: one column ``waveform`` (full scale) at ``config.waveform_sr`` Hz
        (:func:`waveform`), if named.
    """
    if sr != config.sr:
        raise FeatureError(f"signal sampled at {sr} Hz, config expects {config.sr} Hz")
    if "waveform" not in config.families:
        return {}
    samples = waveform(y, sr, target_sr=config.waveform_sr)
    return {"waveform": Stream(samples[:, np.newaxis], ["waveform"], frame_rate=float(config.waveform_sr),
                               unit="full scale", meta={"family": "waveform", "sr": config.waveform_sr})}


def egemaps(y, sr):
    """The 88 eGeMAPS v02 functionals of a clip, computed by openSMILE.

    Parameters
    ----------
    y : np.ndarray [shape=(n,)]
        Mono signal, finite floats.  openSMILE fills its values with NaN (and warns) when
        the clip is too short for its analysis windows (well under 0.5 s).
    sr : number > 0
        Sampling rate (Hz).

    Returns
    -------
    values : np.ndarray [shape=(88,), dtype=float32]
        The functionals, in openSMILE's order.
    names : list of str
        Their openSMILE names, e.g. ``F0semitoneFrom27.5Hz_sma3nz_amean``.

    References
    ----------
    Eyben, F., et al. (2016). The Geneva Minimalistic Acoustic Parameter Set (GeMAPS) for
    voice research and affective computing. IEEE Trans. Affective Computing, 7(2), 190-202.
    """
    y = _check_signal(y, sr)
    table = _smile(opensmile.FeatureSet.eGeMAPSv02).process_signal(y, sr)
    return table.to_numpy(dtype=np.float32)[0], list(table.columns)


def egemaps_lld(y, sr):
    """The 25 eGeMAPS v02 low-level descriptors of a clip, frame by frame, computed by openSMILE.

    Loudness, spectral slopes, alpha ratio, Hammarberg index, spectral flux, MFCC 1-4, and, on
    voiced frames only, F0 (semitones from 27.5 Hz), jitter, shimmer, HNR, H1-H2, H1-A3 and the
    frequency, bandwidth and relative amplitude of formants F1-F3: the formant and voice-quality
    tracks whose means and variations the 88 eGeMAPS functionals summarise, here as a
    frame-level family for emofuse's own functionals and for sequence networks.

    On an unvoiced frame (openSMILE's F0 is 0) openSMILE writes 0, or -201 for the formants'
    relative amplitudes, into the voiced-only descriptors (names ending in ``nz``); here they
    are NaN there, as emofuse's own ``f0`` is.  Frames are openSMILE's: 10 ms hop,
    frame k starting at k × 10 ms (windows of 20 to 60 ms), so they trail emofuse's centred
    frames by half a window.  On a clip too short for the 60 ms pitch window openSMILE warns
    and gives one frame of NaN.

    Parameters
    ----------
    y : np.ndarray [shape=(n,)]
        Mono signal, finite floats.
    sr : number > 0
        Sampling rate (Hz).

    Returns
    -------
    values : np.ndarray [shape=(t, 25), dtype=float32]
        One row per 10 ms frame, t ≈ n / (sr / 100) − 4.
    names : list of str
        openSMILE's names, e.g. ``F1frequency_sma3nz``.

    References
    ----------
    Eyben, F., et al. (2016). The Geneva Minimalistic Acoustic Parameter Set (GeMAPS) for
    voice research and affective computing. IEEE Trans. Affective Computing, 7(2), 190-202.
    """
    y = _check_signal(y, sr)
    table = _smile(opensmile.FeatureSet.eGeMAPSv02,
                   opensmile.FeatureLevel.LowLevelDescriptors).process_signal(y, sr)
    values = np.array(table.to_numpy(dtype=np.float32))
    names = list(table.columns)
    unvoiced = values[:, names.index(EGEMAPS_F0)] == 0
    values[np.ix_(unvoiced, [name.endswith("nz") for name in names])] = np.nan
    return values, names


def compare(y, sr):
    """The 6,373 ComParE 2016 functionals of a clip, computed by openSMILE.

    The large brute-force set of the Interspeech Computational Paralinguistics Challenges:
    65 low-level descriptors (energy, spectral, MFCC, voicing, jitter, shimmer, HNR) and their
    deltas, each summarised by up to 54 functionals.

    Parameters
    ----------
    y : np.ndarray [shape=(n,)]
        Mono signal, finite floats.
    sr : number > 0
        Sampling rate (Hz).

    Returns
    -------
    values : np.ndarray [shape=(6373,), dtype=float32]
        The functionals, in openSMILE's order.
    names : list of str
        Their openSMILE names, e.g. ``audspec_lengthL1norm_sma_range``.

    References
    ----------
    Schuller, B., et al. (2016). The INTERSPEECH 2016 Computational Paralinguistics Challenge:
    Deception, Sincerity & Native Language. Proc. Interspeech, 2001-2005.
    """
    y = _check_signal(y, sr)
    table = _smile(opensmile.FeatureSet.ComParE_2016).process_signal(y, sr)
    return table.to_numpy(dtype=np.float32)[0], list(table.columns)


def audio_streams(y, sr, config: AudioConfig) -> dict:
    """The frame-level audio families of ``config.families``, as streams on one clock.

    The log-mel spectrogram is computed once and shared by the ``mel`` and ``mfcc``
    families.  Clip-level sets (eGeMAPS) are not streams: see :func:`clip_features`.

    Parameters
    ----------
    y : np.ndarray [shape=(n,)]
        Mono signal at ``config.sr``, finite floats.
    sr : number
        Its sampling rate (Hz); must equal ``config.sr``.
    config : AudioConfig
        The parameters of every family, and which families to compute.

    Returns
    -------
    dict of str to Stream
        Those of ``mfcc`` (``mfcc_k``, ``mfcc_k_delta``, ``mfcc_k_delta2``), ``zcr``, ``pitch``
        (``f0`` in Hz, NaN when unvoiced; ``voiced`` 0/1), ``energy`` (``rms``,
        ``log_energy`` in dB), ``chroma`` (``chroma_C`` .. ``chroma_B``), ``mel``
        (``mel_0`` ..  in dB), ``spectral`` (``spectral_centroid``, ``_spread``, ``_rolloff``
        in Hz, ``_flux``, ``_flatness``), ``envelope``, ``mcr`` and ``pitch_acf`` (``f0_acf``
        in Hz by autocorrelation, NaN when unvoiced; ``voiced_acf`` 0/1) that ``config.families``
        names; each with
        ``t = 1 + n // hop_length`` rows and ``frame_rate = sr / hop_length``; and
        ``egemaps_lld`` (:func:`egemaps_lld`, openSMILE's names) on openSMILE's 10 ms clock.
    """
    if sr != config.sr:
        raise FeatureError(f"signal sampled at {sr} Hz, config expects {config.sr} Hz")
    y = _check_signal(y, sr)
    c = config
    short_window = {"frame_length": c.frame_length, "hop_length": c.hop_length}
    cepstra = [f"mfcc_{k}" for k in range(c.n_mfcc)]

    @functools.cache
    def mel():
        return log_mel(y, sr, n_mels=c.n_mels, **short_window)

    def f0_and_voicing():
        return np.stack(pitch(y, sr, fmin=c.fmin, fmax=c.fmax, frame_length=c.pitch_frame_length,
                              hop_length=c.hop_length, voicing_threshold=c.voicing_threshold))

    # family: (values (d, t) when called, column names, unit, analysis window in samples)
    families = {
        "mfcc": (
            lambda: _cepstra(mel(), c.n_mfcc, c.delta_width),
            cepstra + [f"{name}_{order}" for order in ("delta", "delta2") for name in cepstra],
            "",
            c.frame_length,
        ),
        "zcr": (lambda: zero_crossing_rate(y, sr, **short_window), ["zcr"], "", c.frame_length),
        "pitch": (f0_and_voicing, ["f0", "voiced"], "f0: Hz; voiced: 0/1", c.pitch_frame_length),
        "energy": (
            lambda: energy(y, sr, **short_window),
            ["rms", "log_energy"],
            "rms: full scale; log_energy: dB",
            c.frame_length,
        ),
        "chroma": (
            lambda: chroma(y, sr, frame_length=c.chroma_frame_length, hop_length=c.hop_length),
            [f"chroma_{name}" for name in CHROMA_NAMES],
            "",
            c.chroma_frame_length,
        ),
        "mel": (mel, [f"mel_{k}" for k in range(c.n_mels)], "dB", c.frame_length),
        "spectral": (
            lambda: spectral_shape(y, sr, **short_window),
            [f"spectral_{name}" for name in ("centroid", "spread", "rolloff", "flux", "flatness")],
            "centroid, spread, rolloff: Hz; flux, flatness: unitless",
            c.frame_length,
        ),
        "envelope": (lambda: amplitude_envelope(y, sr, **short_window), ["envelope"], "full scale",
                     c.frame_length),
        "mcr": (lambda: mean_crossing_rate(y, sr, **short_window), ["mcr"], "", c.frame_length),
        "pitch_acf": (
            lambda: np.stack(pitch_autocorrelation(y, sr, fmin=c.fmin, fmax=c.fmax, frame_length=c.pitch_frame_length,
                                                   hop_length=c.hop_length)),
            ["f0_acf", "voiced_acf"],  # not "voiced": its functionals must not share pitch's names
            "f0_acf: Hz; voiced_acf: 0/1",
            c.pitch_frame_length,
        ),
    }
    streams = {
        family: Stream(
            compute().T,
            names,
            frame_rate=c.sr / c.hop_length,
            unit=unit,
            meta={"family": family, "sr": c.sr, "frame_length": window, "hop_length": c.hop_length},
        )
        for family, (compute, names, unit, window) in families.items()
        if family in c.families
    }
    if "egemaps_lld" in c.families:  # openSMILE's own 10 ms clock
        values, names = egemaps_lld(y, sr)
        streams["egemaps_lld"] = Stream(
            values, names, frame_rate=1 / EGEMAPS_LLD_HOP_S,
            unit="openSMILE's: loudness in sone, F0 in semitones from 27.5 Hz, formants and bandwidths in Hz, "
                 "jitter relative, shimmer, HNR, H1-H2, H1-A3 in dB",
            meta={"family": "egemaps_lld", "sr": c.sr, "frame_length": round(EGEMAPS_LLD_WINDOW_S * c.sr),
                  "hop_length": round(EGEMAPS_LLD_HOP_S * c.sr)})
    return streams


def clip_features(y, sr, config: AudioConfig) -> dict:
    """The clip-level audio families of ``config.families`` (those in ``CLIP_FAMILIES``).

    Returns
    -------
    dict of str to (np.ndarray [shape=(d,), dtype=float32], list of str)
        family -> (values, names), e.g. ``egemaps`` -> 88 eGeMAPS v02 functionals.
    """
    compute = {"egemaps": egemaps, "compare": compare}
    return {family: compute[family](y, sr) for family in CLIP_FAMILIES if family in config.families}


def warm_up(config: AudioConfig) -> None:
    """Run every family once on a short signal, so that a worker's caches are built: the
    filter banks and the openSMILE extractors of the configured families (half a second), before
    the first real clip is timed."""
    time = np.arange(config.sr // 2) / config.sr
    y = (0.1 * np.sin(2 * np.pi * 220 * time)).astype(np.float32)
    audio_streams(y, config.sr, config)
    clip_features(y, config.sr, config)


def _cepstra(log_mel_db, n_mfcc, delta_width):
    """MFCCs (DCT-II of the log-mel spectrum) stacked over their deltas and delta-deltas."""
    coefficients = scipy.fft.dct(log_mel_db, type=2, norm="ortho", axis=0)[:n_mfcc]
    return np.concatenate(
        [
            coefficients,
            delta(coefficients, width=delta_width, order=1),
            delta(coefficients, width=delta_width, order=2),
        ]
    )


def _power_spectrogram(y, sr, frame_length, hop_length):
    """|STFT|^2 of centred Hann-windowed frames, shape (1 + frame_length // 2, t)."""
    y = _check_signal(y, sr)
    _check_framing(frame_length, hop_length)
    return dsp.power_spectrogram(_centred_frames(y, frame_length, hop_length))


def _centred_frames(y, frame_length, hop_length):
    """Frames centred on samples 0, hop, 2 hop, ..., shape (frame_length, 1 + n // hop)."""
    padded = np.pad(y, frame_length // 2)
    return dsp.frame(padded, frame_length, hop_length)


@functools.cache
def _mel_filters(sr, n_fft, n_mels):
    return dsp.mel_filters(sr, n_fft, n_mels)


@functools.cache
def _chroma_filters(sr, n_fft):
    return dsp.chroma_filters(sr, n_fft)


@functools.cache
def _smile(feature_set, feature_level=opensmile.FeatureLevel.Functionals):
    """One openSMILE extractor per (feature set, level) and process: building it costs more
    than a clip."""
    return opensmile.Smile(feature_set=feature_set, feature_level=feature_level)


def _check_signal(y, sr):
    """The signal as a 1-D float32 array, or a FeatureError saying what is wrong."""
    _check_rate(sr)
    y = np.asarray(y)
    if y.ndim != 1:
        raise FeatureError(f"signal must be 1-D (mono), got shape {y.shape}")
    if y.size == 0:
        raise FeatureError("signal is empty")
    if not np.issubdtype(y.dtype, np.floating):
        raise FeatureError(f"signal must hold floats, got dtype {y.dtype}")
    bad = np.flatnonzero(~np.isfinite(y))
    if bad.size:
        raise FeatureError(f"signal has {bad.size} NaN or infinite samples, first at {bad[0]}")
    return y.astype(np.float32, copy=False)


def _check_rate(sr):
    if isinstance(sr, bool) or not isinstance(sr, numbers.Real) or not 0 < sr < np.inf:
        raise FeatureError(f"sampling rate must be a positive number of Hz, got {sr!r}")


def _check_waveform_rate(sr, waveform_sr):
    if isinstance(waveform_sr, bool) or not isinstance(waveform_sr, numbers.Integral) or not 0 < waveform_sr <= sr \
            or not float(sr).is_integer():
        raise FeatureError(f"waveform rate must be a whole number of Hz in (0, {sr}] at an integer signal rate, "
                           f"got waveform_sr={waveform_sr!r}, sr={sr!r}")


def _check_framing(frame_length, hop_length):
    for name, value in (("frame_length", frame_length), ("hop_length", hop_length)):
        if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
            raise FeatureError(f"{name} must be a positive number of samples, got {value!r}")
    if frame_length % 2:
        raise FeatureError(
            f"frame_length must be even so centred frames share the clock, got {frame_length}"
        )


def _check_delta_width(width):
    if not isinstance(width, numbers.Integral) or width < 3 or width % 2 == 0:
        raise FeatureError(f"delta width must be an odd number of frames >= 3, got {width!r}")


def _check_pitch_range(sr, fmin, fmax, frame_length):
    if not 0 < fmin < fmax <= sr / 4:
        raise FeatureError(
            f"pitch range needs 0 < fmin < fmax <= sr / 4, got fmin={fmin}, fmax={fmax}, sr={sr}"
        )
    shortest = 2 * (int(np.ceil(sr / fmin)) + 2)
    if frame_length < shortest:
        raise FeatureError(
            f"pitch frame_length={frame_length} is too short for fmin={fmin} Hz at sr={sr}: "
            f"need at least {shortest} samples (two periods)"
        )
