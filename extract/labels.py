"""Emotion labels of the supported corpora, and the valence-arousal place of each.

RAVDESS codes follow Livingstone & Russo (2018); CREMA-D codes follow Cao et al. (2014).
Valence and arousal (each in [-1, 1]) are the usual circumplex positions; the synthetic
corpus uses them so that the voice carries mainly arousal and the face mainly valence.
"""

RAVDESS_EMOTIONS = {
    "01": "neutral",
    "02": "calm",
    "03": "happy",
    "04": "sad",
    "05": "angry",
    "06": "fearful",
    "07": "disgust",
    "08": "surprised",
}

CREMAD_EMOTIONS = {
    "ANG": "angry",
    "DIS": "disgust",
    "FEA": "fearful",
    "HAP": "happy",
    "NEU": "neutral",
    "SAD": "sad",
}

# (valence, arousal) per emotion, circumplex model (Russell 1980), rounded.
VALENCE_AROUSAL = {
    "neutral": (0.0, 0.0),
    "calm": (0.3, -0.6),
    "happy": (0.8, 0.5),
    "sad": (-0.7, -0.5),
    "angry": (-0.6, 0.8),
    "fearful": (-0.6, 0.6),
    "disgust": (-0.7, 0.2),
    "surprised": (0.3, 0.8),
}
