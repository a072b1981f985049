"""A source-filter voice that speaks the two RAVDESS statements: the audio half of the synthetic corpus.

The voice carries mainly *arousal*: pitch level and range, speaking rate, loudness and
spectral tilt all move with the clip's arousal (:data:`extract.labels.VALENCE_AROUSAL`),
so emotions of similar arousal (angry / surprised / fearful / happy, or calm / sad) sound
alike.  Valence reaches the voice only as a small formant shift ("smiled speech" shortens
the vocal tract).  Every clip adds its own acting variability, and every actor has its own
pitch, vocal-tract length, timbre, speaking rate and expressiveness.

The model (Fant 1960; Klatt 1980): a Rosenberg glottal pulse train with a pitch contour,
jitter and shimmer, plus aspiration noise, goes through a one-pole spectral-tilt filter and a
cascade of five formant resonators that follow the vowels of the statement; stop bursts and
fricatives are band-limited noise; a faint background noise fills the whole clip.

References
----------
.. [1] G. Fant, *Acoustic Theory of Speech Production*. Mouton, 1960.
.. [2] D. H. Klatt, "Software for a cascade/parallel formant synthesizer",
   J. Acoust. Soc. Am. 67(3), 971-995, 1980.
.. [3] A. E. Rosenberg, "Effect of glottal pulse shape on the quality of natural vowels",
   J. Acoust. Soc. Am. 49(2B), 583-590, 1971.
.. [4] G. E. Peterson, H. L. Barney, "Control methods used in a study of the vowels",
   J. Acoust. Soc. Am. 24(2), 175-184, 1952.
.. [5] K. R. Scherer, "Vocal communication of emotion: a review of research paradigms",
   Speech Communication 40, 227-256, 2003.
"""

from dataclasses import dataclass

import librosa
import numpy as np
import scipy.signal

from ..errors import EmofuseError
from ..labels import VALENCE_AROUSAL

# Vowel formants F1-F3 (Hz) of an adult male voice with a 17.5 cm vocal tract
# (Peterson & Barney 1952); F4 and F5 are the same for every vowel.
VOWELS = {
    "ih": (390, 1990, 2550),  # kids, sit
    "aa": (730, 1090, 2440),  # are, (b)y onset
    "ao": (570, 840, 2410),  # talk, dogs, door
    "ah": (520, 1190, 2390),  # the
}
HIGH_FORMANTS = (3500, 4500)
BANDWIDTHS = (80, 90, 120, 150, 200)  # Hz, F1..F5
REFERENCE_TRACT_CM = 17.5

# Consonants: kind, duration (s at the neutral rate), noise band centre (Hz), level
# relative to the syllable's vowel RMS.  A stop is a closure followed by a 15 ms burst.
CONSONANTS = {
    "k": ("stop", 0.07, 2000, 0.6),
    "t": ("stop", 0.07, 4000, 0.6),
    "d": ("stop", 0.05, 3500, 0.35),
    "b": ("stop", 0.05, 1000, 0.35),
    "s": ("fricative", 0.11, 5500, 0.35),
    "z": ("fricative", 0.08, 5000, 0.2),
    "dh": ("fricative", 0.05, 3000, 0.1),
}
BURST_S = 0.015


@dataclass(frozen=True)
class Syllable:
    """One syllable: onset consonant, vowel (one, or two for a diphthong), coda consonant.

    ``weight`` is the vowel's duration in units of one syllable at the speaking rate;
    ``stress`` (0-1) scales its loudness, pitch accent and mouth opening.
    """

    onset: str
    vowels: tuple
    coda: str
    weight: float
    stress: float


# The two RAVDESS statements.  Same number of syllables, different vowels, consonants,
# stress and timing: "KIDS are TALKing by the DOOR" / "DOGS are SITting BY the DOOR".
STATEMENTS = {
    1: (
        Syllable("k", ("ih",), "z", 0.8, 1.0),
        Syllable("", ("aa",), "", 0.45, 0.3),
        Syllable("t", ("ao",), "k", 1.0, 0.9),
        Syllable("", ("ih",), "", 0.5, 0.3),
        Syllable("b", ("aa", "ih"), "", 0.7, 0.5),
        Syllable("dh", ("ah",), "", 0.35, 0.2),
        Syllable("d", ("ao",), "", 1.3, 0.8),
    ),
    2: (
        Syllable("d", ("ao",), "z", 1.0, 1.0),
        Syllable("", ("aa",), "", 0.4, 0.3),
        Syllable("s", ("ih",), "", 0.6, 0.9),
        Syllable("t", ("ih",), "", 0.45, 0.3),
        Syllable("b", ("aa", "ih"), "", 0.9, 0.8),
        Syllable("dh", ("ah",), "", 0.35, 0.2),
        Syllable("d", ("ao",), "", 1.2, 0.7),
    ),
}

# Prosody per unit of arousal (Scherer 2003: higher arousal -> higher, wider, faster,
# louder, brighter voice) and the formant shift per unit of valence.
PITCH_ST_PER_AROUSAL = 4.0
RANGE_ST_PER_AROUSAL = 2.5
RATE_OCTAVES_PER_AROUSAL = 0.25
LEVEL_DB_PER_AROUSAL = 7.0
TILT_PER_AROUSAL = 0.25
FORMANT_SHIFT_PER_VALENCE = 0.03
ACTING_SD = 0.25  # clip-to-clip SD of the arousal actually put into the voice


@dataclass(frozen=True)
class VoiceIdentity:
    """One actor's voice.

    Attributes
    ----------
    gender : {"male", "female"}
    f0_hz : float
        Median pitch of neutral speech (Hz).
    tract_cm : float
        Vocal-tract length (cm); formants scale as 17.5 / ``tract_cm``.
    rate_syl_s : float
        Neutral speaking rate (syllables per second).
    tilt : float
        Pole (0-1) of the one-pole low-pass on the glottal source: larger is darker.
    breathiness : float
        Aspiration noise relative to the voiced source.
    jitter, shimmer : float
        Relative standard deviation of the glottal period and pulse amplitude.
    level_db : float
        RMS level of the vowels of neutral speech (dBFS).
    noise_db : float
        RMS level of the background noise (dBFS).
    expressiveness : float
        Scale of the arousal this actor puts into the voice (1 = average).
    """

    gender: str
    f0_hz: float
    tract_cm: float
    rate_syl_s: float
    tilt: float
    breathiness: float
    jitter: float
    shimmer: float
    level_db: float
    noise_db: float
    expressiveness: float


@dataclass(frozen=True)
class Prosody:
    """How one clip is spoken: the voice's settings after emotion and acting variability.

    Attributes
    ----------
    f0_hz : float
        Pitch level (Hz) that the contour moves around.
    range_st : float
        Height of the pitch accents (semitones).
    rate_syl_s : float
        Speaking rate (syllables per second).
    level_db : float
        RMS level of the vowels (dBFS).
    tilt : float
        Pole of the spectral-tilt filter.
    formant_scale : float
        Factor on all formant frequencies (vocal-tract length and smile).
    """

    f0_hz: float
    range_st: float
    rate_syl_s: float
    level_db: float
    tilt: float
    formant_scale: float


def sample_voice(rng: np.random.Generator, gender: str) -> VoiceIdentity:
    """Draw one actor's voice.

    Parameters
    ----------
    rng : np.random.Generator
        Source of randomness.
    gender : {"male", "female"}
        Male voices get a lower pitch (95-140 Hz) and a longer vocal tract (about 17 cm)
        than female ones (180-240 Hz, about 14.8 cm).

    Returns
    -------
    voice : VoiceIdentity
    """
    if gender not in ("male", "female"):
        raise EmofuseError(f"gender must be 'male' or 'female', got {gender!r}")
    male = gender == "male"
    u = rng.uniform
    return VoiceIdentity(
        gender=gender,
        f0_hz=u(95, 140) if male else u(180, 240),
        tract_cm=rng.normal(17.0, 0.6) if male else rng.normal(14.8, 0.5),
        rate_syl_s=u(4.0, 5.0),
        tilt=u(0.35, 0.65),
        breathiness=u(0.02, 0.08) if male else u(0.04, 0.12),
        jitter=u(0.005, 0.015),
        shimmer=u(0.03, 0.08),
        level_db=u(-32.0, -28.0),
        noise_db=u(-68.0, -58.0),
        expressiveness=u(0.7, 1.3),
    )


def clip_prosody(voice: VoiceIdentity, emotion: str, intensity: float, rng: np.random.Generator) -> Prosody:
    """Settings of one clip: the actor's voice moved by the emotion's arousal (and a little valence).

    Parameters
    ----------
    voice : VoiceIdentity
    emotion : str
        A key of :data:`extract.labels.VALENCE_AROUSAL`.
    intensity : float > 0
        1.0 = RAVDESS "normal", 2.0 = "strong".
    rng : np.random.Generator
        Source of the clip's acting variability.

    Returns
    -------
    prosody : Prosody
    """
    if emotion not in VALENCE_AROUSAL:
        raise EmofuseError(f"emotion must be one of {sorted(VALENCE_AROUSAL)}, got {emotion!r}")
    if intensity <= 0:
        raise EmofuseError(f"intensity must be positive, got {intensity}")
    valence, arousal = VALENCE_AROUSAL[emotion]
    gain = 0.5 + 0.5 * intensity  # 1 for normal, 1.5 for strong
    # 1. The arousal this take really shows: actor x intensity x target, plus acting noise.
    shown = voice.expressiveness * gain * arousal + rng.normal(0, ACTING_SD)
    # 2. Each cue follows it with its own small noise, so that no single cue is exact.
    n = rng.normal
    return Prosody(
        f0_hz=voice.f0_hz * 2 ** ((PITCH_ST_PER_AROUSAL * shown + n(0, 0.7)) / 12),
        range_st=max(0.5, 3.0 + RANGE_ST_PER_AROUSAL * shown + n(0, 0.6)),
        rate_syl_s=voice.rate_syl_s * 2 ** (RATE_OCTAVES_PER_AROUSAL * shown + n(0, 0.06)),
        level_db=voice.level_db + LEVEL_DB_PER_AROUSAL * shown + n(0, 1.5),
        tilt=float(np.clip(voice.tilt - TILT_PER_AROUSAL * shown + n(0, 0.05), 0.05, 0.9)),
        formant_scale=REFERENCE_TRACT_CM / voice.tract_cm
        * (1 + FORMANT_SHIFT_PER_VALENCE * gain * valence + n(0, 0.01)),
    )


def synthesize_speech(
    voice: VoiceIdentity,
    emotion: str,
    intensity: float,
    statement: int,
    rng: np.random.Generator,
    *,
    sr: int,
    duration: float,
) -> tuple:
    """Speak a RAVDESS statement in an emotion: lead-in silence, the statement, trailing silence.

    Parameters
    ----------
    voice : VoiceIdentity
        The actor (see :func:`sample_voice`).
    emotion : str
        A key of :data:`extract.labels.VALENCE_AROUSAL`.
    intensity : float > 0
        1.0 = RAVDESS "normal", 2.0 = "strong".
    statement : {1, 2}
        "Kids are talking by the door" or "Dogs are sitting by the door".
    rng : np.random.Generator
        Source of the clip's randomness.
    sr : int > 0
        Sampling rate (Hz).
    duration : float
        Clip length (s); must leave room for the statement (about 1.3-2.6 s).

    Returns
    -------
    y : np.ndarray [shape=(n,), dtype=float32]
        The clip in [-1, 1], ``n = round(duration * sr)``.
    envelope : np.ndarray [shape=(n,), dtype=float32]
        Syllable envelope: how open the mouth is, 0 (closed: silence, stop closure) to
        1 (open vowel, fully stressed).

    References
    ----------
    .. [1] D. H. Klatt, "Software for a cascade/parallel formant synthesizer",
       J. Acoust. Soc. Am. 67(3), 971-995, 1980.
    """
    if statement not in STATEMENTS:
        raise EmofuseError(f"statement must be 1 or 2, got {statement!r}")
    if sr <= 0:
        raise EmofuseError(f"sr must be positive, got {sr}")
    prosody = clip_prosody(voice, emotion, intensity, rng)
    n = int(round(duration * sr))
    t = np.arange(n) / sr

    # 1. Timeline: place the syllables after a lead-in silence.
    segments, speech_s = _timeline(STATEMENTS[statement], prosody.rate_syl_s, rng)
    room = duration - speech_s - 0.25
    if room < 0.15:
        raise EmofuseError(f"duration {duration:.2f} s is too short for a {speech_s:.2f} s statement")
    start = min(rng.uniform(0.45, 0.8), room)
    vowels = [(start + v0, start + v1, syl) for kind, v0, v1, syl in segments if kind == "vowel"]
    consonants = [(start + c0, start + c1, syl, kind) for kind, c0, c1, syl in segments if kind != "vowel"]

    # 2. Voicing amplitude and mouth opening: a raised plateau per vowel, 25 ms ramps.
    amplitude = _plateaus(t, [(v0, v1, 0.5 + 0.5 * s.stress) for v0, v1, s in vowels])
    openness = [np.mean([(VOWELS[v][0] - 250) / 500 for v in s.vowels]) for _, _, s in vowels]
    envelope = _plateaus(t, [(v0, v1, (0.4 + 0.6 * s.stress) * o) for (v0, v1, s), o in zip(vowels, openness)])

    # 3. Pitch contour (semitones around the level): declination, accents on stressed
    #    vowels, slow drift.
    speech = (start, start + speech_s)
    st = np.interp(t, speech, [prosody.range_st / 2, -prosody.range_st / 2])
    for v0, v1, s in vowels:
        st += prosody.range_st * s.stress**2 * np.exp(-0.5 * ((t - (v0 + v1) / 2) / (0.4 * (v1 - v0))) ** 2)
    st += _smooth_noise(t, rng, sd=0.5, period_s=0.3)
    f0 = prosody.f0_hz * 2 ** (st / 12)

    # 4. Glottal source: Rosenberg pulses with jitter and shimmer, differentiated (lip
    #    radiation), aspiration noise while the glottis is open, spectral tilt.
    flow = _glottal_flow(t, f0, speech, voice.jitter, voice.shimmer, rng)
    source = np.diff(flow, prepend=0.0)
    source /= np.std(source[flow > 0])
    source += voice.breathiness * (0.3 + flow) * rng.standard_normal(n)
    source = scipy.signal.lfilter([1 - prosody.tilt], [1, -prosody.tilt], source * amplitude)

    # 5. Vocal tract: time-varying cascade of formant resonances.
    speech_wave = _formant_filter(source, vowels, prosody.formant_scale, sr)
    vowel_rms = np.sqrt(np.mean(speech_wave[amplitude > 0.1] ** 2))

    # 6. Consonants: band-limited noise (a burst at the end of a stop's closure, or a
    #    fricative over its whole length).
    for c0, c1, s, letter in consonants:
        kind, _, centre_hz, level = CONSONANTS[letter]
        i0, i1 = np.searchsorted(t, [c1 - BURST_S if kind == "stop" else c0, c1])
        noise = _band_noise(i1 - i0, centre_hz * prosody.formant_scale, sr, rng)
        speech_wave[i0:i1] += vowel_rms * level * (0.5 + 0.5 * s.stress) * noise * np.hanning(i1 - i0)

    # 7. Level of the vowels, then the (pinkish) background noise of the room.
    y = speech_wave * 10 ** (prosody.level_db / 20) / vowel_rms
    room_noise = scipy.signal.lfilter([1.0], [1.0, -0.9], rng.standard_normal(n))
    y += room_noise * 10 ** (voice.noise_db / 20) / np.std(room_noise)
    return np.clip(y, -1, 1).astype(np.float32), envelope.astype(np.float32)


def _timeline(syllables, rate_syl_s, rng):
    """Segments ``(kind, start_s, end_s, syllable)`` from time 0, and the statement's length (s).

    ``kind`` is "vowel" or a consonant of :data:`CONSONANTS`.
    """
    syllable_s = 1.0 / rate_syl_s
    consonant_scale = np.sqrt(4.5 / rate_syl_s)  # consonants stretch less than vowels
    segments, now = [], 0.0
    for s in syllables:
        for kind in (s.onset, "vowel", s.coda):
            if not kind:
                continue
            if kind == "vowel":
                length = s.weight * syllable_s * rng.uniform(0.85, 1.15)
            else:
                length = CONSONANTS[kind][1] * consonant_scale
            segments.append((kind, now, now + length, s))
            now += length
    return segments, now


def _plateaus(t, spans):
    """Sum of trapezoids ``(start_s, end_s, height)`` with 25 ms ramps inside each span."""
    out = np.zeros_like(t)
    for start, end, height in spans:
        ramp = min(0.025, (end - start) / 3)
        out += np.interp(t, [start, start + ramp, end - ramp, end], [0, height, height, 0])
    return out


def _smooth_noise(t, rng, *, sd, period_s):
    """Slow random wander: normal values every ``period_s`` seconds, linearly joined."""
    knots = np.arange(0.0, t[-1] + 2 * period_s, period_s)
    return np.interp(t, knots, rng.normal(0, sd, knots.size))


def _glottal_flow(t, f0, speech, jitter, shimmer, rng):
    """Rosenberg glottal flow (peak about 1) over ``speech`` = (start_s, end_s), 0 elsewhere."""
    # 1. Glottal closure instants: one period of the contour after the other, with jitter.
    epochs = [speech[0]]
    while epochs[-1] < speech[1]:
        period = 1.0 / np.interp(epochs[-1], t, f0)
        epochs.append(epochs[-1] + period * (1 + jitter * rng.standard_normal()))
    epochs = np.asarray(epochs)
    heights = 1 + shimmer * rng.standard_normal(epochs.size)
    # 2. Phase within the period of every sample.
    k = np.clip(np.searchsorted(epochs, t, side="right") - 1, 0, epochs.size - 2)
    phase = (t - epochs[k]) / (epochs[k + 1] - epochs[k])
    inside = (t >= epochs[0]) & (t < epochs[-1])
    # 3. Rosenberg (1971) pulse: cosine opening over 40 % of the period, quarter-cosine
    #    closing over 16 %, closed for the rest.
    opening, closing = 0.4, 0.16
    pulse = np.where(
        phase < opening,
        0.5 * (1 - np.cos(np.pi * phase / opening)),
        np.cos(0.5 * np.pi * np.clip((phase - opening) / closing, 0, 1)),
    )
    return pulse * heights[k] * inside


def _formant_filter(source, vowels, formant_scale, sr):
    """Filter ``source`` by five formant resonances that move from vowel to vowel.

    Formant targets sit at each vowel's middle (a diphthong's two vowels at its first and
    second third) and are linearly joined; the cascade's magnitude response multiplies the
    STFT of the source frame by frame (zero phase).
    """
    n_fft = 2 ** int(np.ceil(np.log2(0.032 * sr)))  # 32 ms or more: 512 at 16 kHz
    hop = n_fft // 4
    spectrum = librosa.stft(source, n_fft=n_fft, hop_length=hop)
    times = librosa.frames_to_time(np.arange(spectrum.shape[1]), sr=sr, hop_length=hop)
    freqs = librosa.fft_frequencies(sr=sr, n_fft=n_fft)[:, None]
    # 1. Formant tracks F1-F3 through the vowel targets, F4-F5 fixed; (5, frames) in Hz.
    knots, targets = [], []
    for start, end, s in vowels:
        for i, vowel in enumerate(s.vowels):
            knots.append(start + (end - start) * (i + 1) / (len(s.vowels) + 1))
            targets.append(VOWELS[vowel] + HIGH_FORMANTS)
    tracks = np.stack([np.interp(times, knots, column) for column in np.transpose(targets)])
    # 2. Cascade of two-pole resonators, each with unit gain at 0 Hz (Klatt 1980):
    #    |H(f)| = (F^2 + b^2) / sqrt(((f - F)^2 + b^2)((f + F)^2 + b^2)), b = bandwidth / 2.
    gain = np.ones((freqs.size, times.size))
    for formant, bandwidth in zip(tracks * formant_scale, BANDWIDTHS):
        b = bandwidth / 2
        gain *= (formant**2 + b**2) / np.sqrt(((freqs - formant) ** 2 + b**2) * ((freqs + formant) ** 2 + b**2))
    return librosa.istft(spectrum * gain, hop_length=hop, length=source.size)


def _band_noise(n, centre_hz, sr, rng):
    """Unit-RMS white noise through a two-pole resonator at ``centre_hz``, bandwidth = centre."""
    centre_hz = min(centre_hz, 0.45 * sr)
    radius = np.exp(-np.pi * centre_hz / sr)  # pole radius for a bandwidth of centre_hz
    a = [1.0, -2 * radius * np.cos(2 * np.pi * centre_hz / sr), radius**2]
    noise = scipy.signal.lfilter([1.0], a, rng.standard_normal(n))
    return noise / np.std(noise)
