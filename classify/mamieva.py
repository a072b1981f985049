"""Mamieva et al. (2023): speech and face encoders, attention fusion (eqs. 4-6), dense classifier.

The paper's speech encoder has two branches whose outputs are concatenated:

- MFCC branch: three parallel 2-D convolution blocks with kernels 3x3, 9x1 and 1x11 over the
  MFCC map, concatenated.  The paper does not say which axis is time; here rows are frames
  and columns coefficients, so 9x1 spans 9 frames of one coefficient (temporal context) and
  1x11 spans 11 coefficients of one frame (spectral context).  The paper's MFCCs come from
  64 ms frames; the store's are 25 ms frames every 10 ms, so runs of ``mfcc_stride`` (4)
  frames are averaged into 40 ms steps first.  Each block is that convolution, batch
  normalisation, ReLU, 2x2 max-pooling, the 3x3 depthwise convolution the paper lists among
  its tools, batch normalisation, ReLU and an average over time, flattened: filter counts,
  depth, dilation and pooling are not stated (a dilated depthwise convolution cost six times
  as much on a CPU here and is left out).  The coefficient axis is not averaged away, since
  which coefficient a pattern sits on is what an MFCC map says.
- Waveform branch: three 1-D convolutions with kernels 8, 6 and 6, each followed by batch
  normalisation, ReLU and max-pooling of 10, 8 and 8 (the paper's table), then a global
  average over time.  The paper's 64, 128 and 256 filters and its unstated strides are
  parameters; the defaults, 16, 32 and 64 filters and strides 8, 2, 1, are CPU-sized (the
  paper's widths cost about six times the computation on a 4 s clip at 8 kHz).

The face encoder of the paper is a pretrained ResNet with high- and low-level feature
generation pyramids (M2Det-like); no pretrained weights can be loaded offline, so a small CNN
trained from scratch stands in: three 3x3 convolutions (the first with stride 2; batch
normalisation, ReLU, 2x2 max-pooling after the first two), an average down to a 2x2 grid per
face crop (an aligned face keeps its eyes above its mouth, so where a pattern lies matters),
flattened, and the mean over the clip's crops.

Each modality vector passes through its own dense layer (ReLU, dropout) to ``a in R^s``; with
``A = [a_speech, a_face] in R^{s x 2}`` (the paper orders face first; the order changes only
that of ``omega``):

- eq. 4: ``X = tanh(W A)``, ``W in R^{s x s}``
- eq. 5: ``omega = softmax(w^T X) in R^2``
- eq. 6: ``F = A omega^T``

then a dense ReLU layer, dropout and a linear layer give the logits (the paper's
"classification layer" is not specified).  A clip without a face has only its speech
encoding in the softmax (``omega = (1, 0)``), and a model fitted without faces is the speech
encoder alone: the audio branch.

Inputs have a fixed length, as for any CNN over raw signals: MFCC maps are cut to
``mfcc_frames`` steps and waveforms to ``waveform_samples`` samples, centred (the middle of
a longer clip is kept, a shorter one is zero-padded equally on both sides).  MFCCs are
standardised per coefficient with training statistics (padding is then the training mean);
each waveform is z-normalised on its own, as the paper does; face crops are standardised with
the training pixels' mean and deviation.
"""

import numpy as np
import torch
from sklearn.utils.validation import check_is_fitted
from torch import nn

from features.torch_threads import torch_threads

from .networks import NetworkInputError, _average_frames, _standardise, _standardiser, _TorchClassifier

__all__ = ["MfccEncoder", "WaveformEncoder", "FaceEncoder", "MamievaNetwork", "MamievaClassifier", "fit_length"]

MFCC_KERNELS = ((3, 3), (9, 1), (1, 11))
"""Kernels (frames x coefficients) of the MFCC branch's three parallel blocks."""


def fit_length(x, length):
    """Cut or zero-pad ``x`` along its first axis to ``length``, centred.

    Parameters
    ----------
    x : np.ndarray [shape=(t, ...)]
    length : int >= 1

    Returns
    -------
    np.ndarray [shape=(length, ...)]
        ``x[(t - length) // 2 :][:length]`` when ``t >= length``; else ``x`` with
        ``(length - t) // 2`` zero rows before it and the rest after it.
    """
    t = len(x)
    if t >= length:
        start = (t - length) // 2
        return x[start : start + length]
    before = (length - t) // 2
    return np.pad(x, [(before, length - t - before)] + [(0, 0)] * (x.ndim - 1))


class MfccEncoder(nn.Module):
    """Three parallel 2-D convolution blocks (3x3, 9x1, 1x11) over an MFCC map, concatenated.

    Parameters
    ----------
    n_coefficients : int
        Columns of the map.
    channels : int
        Filters of each block.

    Input ``[shape=(batch, 1, frames, n_coefficients)]``; output
    ``[shape=(batch, 3 * channels * ceil(n_coefficients / 2))]``: per block and filter, the
    time average of each pooled coefficient.
    """

    def __init__(self, n_coefficients, channels=8):
        super().__init__()
        self.blocks = nn.ModuleList(
            nn.Sequential(
                nn.Conv2d(1, channels, kernel, padding="same"), nn.BatchNorm2d(channels), nn.ReLU(),
                nn.MaxPool2d(2, ceil_mode=True),
                nn.Conv2d(channels, channels, 3, padding=1, groups=channels),
                nn.BatchNorm2d(channels), nn.ReLU(),
                nn.AdaptiveAvgPool2d((1, None)), nn.Flatten(),
            )
            for kernel in MFCC_KERNELS
        )
        self.size = 3 * channels * -(-n_coefficients // 2)

    def forward(self, x):
        return torch.cat([block(x) for block in self.blocks], dim=1)


class WaveformEncoder(nn.Module):
    """Three 1-D convolutions, each with max-pooling, over a waveform; global average.

    Parameters
    ----------
    length : int
        Input samples; each layer's output must keep at least one step.
    filters, kernels, pools, strides : tuple of 3 int
        Per layer (paper: 64/128/256 filters, kernels 8/6/6, pools 10/8/8; strides not stated;
        defaults: 16/32/64 filters, strides 8/2/1).

    Input ``[shape=(batch, 1, length)]``; output ``[shape=(batch, filters[-1])]``.

    Raises
    ------
    NetworkInputError
        ``length`` too short for the layers.
    """

    def __init__(self, length, filters=(16, 32, 64), kernels=(8, 6, 6), pools=(10, 8, 8), strides=(8, 2, 1)):
        super().__init__()
        layers, in_channels, steps = [], 1, length
        for out_channels, kernel, pool, stride in zip(filters, kernels, pools, strides, strict=True):
            steps = ((steps - kernel) // stride + 1) // pool
            if steps < 1:
                raise NetworkInputError(
                    f"waveforms of {length} samples are too short for kernels {kernels}, strides {strides} and "
                    f"pools {pools}")
            layers += [nn.Conv1d(in_channels, out_channels, kernel, stride=stride), nn.BatchNorm1d(out_channels),
                       nn.ReLU(), nn.MaxPool1d(pool)]
            in_channels = out_channels
        self.layers = nn.Sequential(*layers, nn.AdaptiveAvgPool1d(1), nn.Flatten())
        self.size = in_channels

    def forward(self, x):
        return self.layers(x)


class FaceEncoder(nn.Module):
    """A small CNN over each face crop, averaged over a clip's crops.

    Parameters
    ----------
    channels : tuple of int
        Filters of the 3x3 convolutions (the first with stride 2); 2x2 max-pooling follows
        each but the last.

    Input ``[shape=(batch, n_frames, height, width)]``; output ``[shape=(batch, 4 * channels[-1])]``:
    each filter averaged over the four quarters of the crop, then over the crops.
    """

    def __init__(self, channels=(8, 16, 32)):
        super().__init__()
        layers, in_channels = [], 1
        for i, out_channels in enumerate(channels):
            layers += [nn.Conv2d(in_channels, out_channels, 3, stride=2 if i == 0 else 1, padding=1),
                       nn.BatchNorm2d(out_channels), nn.ReLU()]
            if i < len(channels) - 1:
                layers.append(nn.MaxPool2d(2, ceil_mode=True))
            in_channels = out_channels
        self.layers = nn.Sequential(*layers, nn.AdaptiveAvgPool2d(2), nn.Flatten())
        self.size = 4 * in_channels

    def forward(self, frames):
        batch, n_frames, height, width = frames.shape
        per_frame = self.layers(frames.reshape(batch * n_frames, 1, height, width))
        return per_frame.reshape(batch, n_frames, -1).mean(dim=1)


class MamievaNetwork(nn.Module):
    """Speech encoder (MFCC + waveform branches), optional face encoder, attention fusion, classifier.

    Parameters
    ----------
    n_classes : int
    n_coefficients : int
        Columns of the MFCC map.
    waveform_samples : int
        Input length of the waveform branch.
    faces : bool
        Build the face encoder (False: speech only).
    mfcc_channels : int
        Filters of each MFCC block.
    waveform_filters, waveform_kernels, waveform_pools, waveform_strides : tuple of int
        See `WaveformEncoder`.
    face_channels : tuple of int
        See `FaceEncoder`.
    encoding_size : int
        ``s``: the size of each modality encoding, and of W (s x s) and w (s).
    hidden_units : int
        Width of the classifier's hidden layer.
    dropout : float
        After the modality encodings and the hidden layer.
    """

    def __init__(self, n_classes, n_coefficients, waveform_samples, faces=True, mfcc_channels=8,
                 waveform_filters=(16, 32, 64), waveform_kernels=(8, 6, 6), waveform_pools=(10, 8, 8),
                 waveform_strides=(8, 2, 1), face_channels=(8, 16, 32), encoding_size=64, hidden_units=64,
                 dropout=0.3):
        super().__init__()
        self.mfcc_encoder = MfccEncoder(n_coefficients, mfcc_channels)
        self.waveform_encoder = WaveformEncoder(waveform_samples, waveform_filters, waveform_kernels,
                                                waveform_pools, waveform_strides)
        speech_size = self.mfcc_encoder.size + self.waveform_encoder.size
        self.speech_dense = nn.Sequential(nn.Linear(speech_size, encoding_size), nn.ReLU(), nn.Dropout(dropout))
        self.face_encoder = FaceEncoder(face_channels) if faces else None
        self.face_dense = (nn.Sequential(nn.Linear(self.face_encoder.size, encoding_size), nn.ReLU(),
                                         nn.Dropout(dropout)) if faces else None)
        self.W = nn.Linear(encoding_size, encoding_size, bias=False)
        self.w = nn.Linear(encoding_size, 1, bias=False)
        self.classifier = nn.Sequential(nn.Linear(encoding_size, hidden_units), nn.ReLU(), nn.Dropout(dropout),
                                        nn.Linear(hidden_units, n_classes))

    def fuse(self, mfcc, waveform, faces, has_face):
        """Fused encoding ``F [shape=(batch, s)]`` and weights ``omega [shape=(batch, 2)]`` (speech, face).

        ``mfcc [shape=(batch, 1, frames, coefficients)]``, ``waveform [shape=(batch, 1, samples)]``,
        ``faces [shape=(batch, n_frames, h, w)]`` (ignored without a face encoder) and
        ``has_face [shape=(batch,), dtype=bool]``: a clip without a face gets ``omega = (1, 0)``.
        """
        speech = torch.cat([self.mfcc_encoder(mfcc), self.waveform_encoder(waveform)], dim=1)
        # 1. Each modality through its own dense layer: a_speech, a_face in R^s, stacked as A (s x 2).
        encodings = [self.speech_dense(speech)]
        present = [torch.ones_like(has_face)]
        if self.face_encoder is not None:
            encodings.append(self.face_dense(self.face_encoder(faces)))
            present.append(has_face)
        A = torch.stack(encodings, dim=2)
        # 2. Eq. 4: X = tanh(W A), one column per modality.
        X = torch.tanh(self.W(A.transpose(1, 2)))
        # 3. Eq. 5: omega = softmax(w^T X) over the modalities the clip has.
        scores = self.w(X).squeeze(2).masked_fill(~torch.stack(present, dim=1), -torch.inf)
        omega = torch.softmax(scores, dim=1)
        # 4. Eq. 6: F = A omega^T.
        fused = (A @ omega.unsqueeze(2)).squeeze(2)
        if self.face_encoder is None:
            omega = torch.cat([omega, torch.zeros_like(omega)], dim=1)
        return fused, omega

    def forward(self, mfcc, waveform, faces, has_face):
        """Logits ``[shape=(batch, n_classes)]``; inputs as `fuse`."""
        return self.classifier(self.fuse(mfcc, waveform, faces, has_face)[0])


class _Clips:
    """A batch-indexable set of prepared clips: tensors of the three inputs and the face mask."""

    def __init__(self, mfcc, waveform, faces, has_face):
        self.mfcc, self.waveform, self.faces, self.has_face = mfcc, waveform, faces, has_face

    def __len__(self):
        return len(self.mfcc)

    def batch(self, index):
        faces = self.faces[index] if self.faces is not None else torch.zeros((len(index), 0, 0, 0))
        return self.mfcc[index], self.waveform[index], faces, self.has_face[index]


class MamievaClassifier(_TorchClassifier):
    """Mamieva et al.'s network (module docstring) as a scikit-learn classifier.

    ``X`` is a sequence of clips, each a tuple ``(mfcc, waveform, faces)``:

    - ``mfcc`` ``np.ndarray [shape=(t, d)]``: frames x cepstral coefficients (e.g. the 40
      static MFCCs of the store's ``mfcc`` family, 100 frames/s);
    - ``waveform`` ``np.ndarray [shape=(n,)]``: the signal (e.g. the ``waveform`` family, 8 kHz);
    - ``faces`` ``np.ndarray [shape=(f, h, w)]`` face crops (e.g. the ``face_frames`` family,
      8 crops of 32 x 32 grey levels), or None where the clip has no face.

    Fitted on clips that all have ``faces`` None, the model is the speech branch alone and
    takes no faces; otherwise every given ``faces`` must have the shape of the first.

    Parameters
    ----------
    mfcc_stride : int
        MFCC frames averaged into one step (4: 40 ms steps from the store's 10 ms frames).
    mfcc_frames : int
        Steps every MFCC map is cut or padded to after averaging (100: 4 s in 40 ms steps).
    waveform_samples : int
        Samples every waveform is cut or padded to (32000: 4 s at 8 kHz).
    mfcc_channels : int
        Filters of each of the three MFCC blocks (paper: not stated).
    waveform_filters : tuple of 3 int
        Filters of the waveform branch (paper: 64/128/256; default 16/32/64, CPU-sized).
    waveform_kernels, waveform_pools : tuple of 3 int
        Its kernels and max-pools (paper: 8/6/6 and 10/8/8).
    waveform_strides : tuple of 3 int
        Its convolution strides (paper: not stated).
    face_channels : tuple of int
        The face CNN's filters.
    encoding_size : int
        ``s``, the size of each modality encoding (paper: not stated).
    hidden_units : int
        Width of the classifier's hidden layer.
    dropout : float
    learning_rate, weight_decay : float
        Adam step size and L2 penalty (paper: the training table is missing).
    batch_size : int
    max_epochs : int
        Upper bound on epochs; lower it to trade accuracy for time on a small CPU.
    validation_fraction : float
        Stratified part of the training clips whose loss stops training (0 disables it).
    patience : int
        Epochs without validation improvement before stopping (the best epoch's weights are kept).
    random_state : int, RandomState or None
    n_threads : int

    Attributes
    ----------
    classes_ : np.ndarray [shape=(n_classes,)]
    n_coefficients_ : int
        MFCC columns.
    mfcc_mean_, mfcc_scale_ : np.ndarray [shape=(n_coefficients,)]
        Per-coefficient training mean and deviation over all training frames.
    face_shape_ : tuple or None
        ``(f, h, w)`` of the training faces; None for a speech-only model.
    face_mean_, face_scale_ : float
        Training pixels' mean and deviation (with faces only).
    network_ : MamievaNetwork
    n_epochs_ : int
    best_validation_loss_ : float

    References
    ----------
    Mamieva, D., Abdusalomov, A. B., Kutlimuratov, A., Muminov, B., Whangbo, T. K. (2023).
    "Multimodal emotion detection via attention-based fusion of extracted facial and speech
    features." Sensors 23(12), 5475; section 3 and eqs. 4-6.
    """

    def __init__(self, mfcc_stride=4, mfcc_frames=100, waveform_samples=32000, mfcc_channels=8,
                 waveform_filters=(16, 32, 64), waveform_kernels=(8, 6, 6), waveform_pools=(10, 8, 8),
                 waveform_strides=(8, 2, 1), face_channels=(8, 16, 32), encoding_size=64, hidden_units=64,
                 dropout=0.3, learning_rate=1e-3, weight_decay=0.0, batch_size=32, max_epochs=30,
                 validation_fraction=0.15, patience=6, random_state=0, n_threads=1):
        self.mfcc_stride = mfcc_stride
        self.mfcc_frames = mfcc_frames
        self.waveform_samples = waveform_samples
        self.mfcc_channels = mfcc_channels
        self.waveform_filters = waveform_filters
        self.waveform_kernels = waveform_kernels
        self.waveform_pools = waveform_pools
        self.waveform_strides = waveform_strides
        self.face_channels = face_channels
        self.encoding_size = encoding_size
        self.hidden_units = hidden_units
        self.dropout = dropout
        self.learning_rate = learning_rate
        self.weight_decay = weight_decay
        self.batch_size = batch_size
        self.max_epochs = max_epochs
        self.validation_fraction = validation_fraction
        self.patience = patience
        self.random_state = random_state
        self.n_threads = n_threads

    def _prepare(self, X, fitting):
        mfccs, waveforms, faces = self._check(X, fitting)
        if fitting:
            self.n_coefficients_ = mfccs[0].shape[1]
            self.mfcc_mean_, self.mfcc_scale_ = _standardiser(np.vstack(mfccs))
            given = [f for f in faces if f is not None]
            self.face_shape_ = given[0].shape if given else None
            if given:
                pixels = np.stack(given)
                self.face_mean_, self.face_scale_ = float(pixels.mean()), float(pixels.std()) or 1.0
        mfcc = np.stack([fit_length(_average_frames(_standardise(m, self.mfcc_mean_, self.mfcc_scale_),
                                                     self.mfcc_stride), self.mfcc_frames) for m in mfccs])
        waveform = np.stack([fit_length(_z_normalise(w), self.waveform_samples) for w in waveforms])
        has_face = torch.tensor([f is not None for f in faces], dtype=torch.bool)
        face_tensor = None
        if self.face_shape_ is not None:
            face_tensor = torch.from_numpy(np.stack([
                ((f - self.face_mean_) / self.face_scale_).astype(np.float32) if f is not None
                else np.zeros(self.face_shape_, np.float32) for f in faces]))
        return _Clips(torch.from_numpy(mfcc[:, None]), torch.from_numpy(waveform[:, None]), face_tensor, has_face)

    def _check(self, X, fitting):
        """Validate the clips; their MFCC maps, waveforms and faces as float arrays (faces or None)."""
        name = type(self).__name__
        lengths = {"mfcc_stride": self.mfcc_stride, "mfcc_frames": self.mfcc_frames,
                   "waveform_samples": self.waveform_samples}
        bad = {key: value for key, value in lengths.items() if not (isinstance(value, int) and value >= 1)}
        if bad:
            raise NetworkInputError(f"{name}: {', '.join(f'{k}={v!r}' for k, v in bad.items())}; each must be an "
                                    "int >= 1")
        try:
            clips = [tuple(clip) for clip in X]
        except TypeError as err:
            raise NetworkInputError(f"{name}: X must be a sequence of (mfcc, waveform, faces) tuples") from err
        if not clips:
            raise NetworkInputError(f"{name}: X is empty (no clips)")
        mfccs, waveforms, faces = [], [], []
        for i, clip in enumerate(clips):
            if len(clip) != 3:
                raise NetworkInputError(f"{name}: clip {i} has {len(clip)} parts; expected (mfcc, waveform, faces)")
            mfcc, waveform, face = (None if part is None else np.asarray(part, dtype=np.float64) for part in clip)
            n_coefficients = mfccs[0].shape[1] if mfccs else (None if fitting else self.n_coefficients_)
            if mfcc is None or mfcc.ndim != 2 or 0 in mfcc.shape or n_coefficients not in (None, mfcc.shape[1]):
                raise NetworkInputError(f"{name}: clip {i}'s MFCC map has shape "
                                        f"{None if mfcc is None else mfcc.shape}; expected (t >= 1, "
                                        f"{n_coefficients or 'd'})")
            if waveform is None or waveform.ndim != 1 or not len(waveform):
                raise NetworkInputError(f"{name}: clip {i}'s waveform has shape "
                                        f"{None if waveform is None else waveform.shape}; expected (n >= 1,)")
            if face is not None:
                if not fitting and self.face_shape_ is None:
                    raise NetworkInputError(f"{name}: clip {i} has faces, but the model was fitted on speech only")
                expected = next((f.shape for f in faces if f is not None), None) if fitting else self.face_shape_
                if face.ndim != 3 or 0 in face.shape or (expected is not None and face.shape != expected):
                    raise NetworkInputError(f"{name}: clip {i}'s faces have shape {face.shape}; expected "
                                            f"{expected or '(f, h, w)'}")
                if not np.isfinite(face).all():
                    raise NetworkInputError(f"{name}: clip {i}'s faces have NaN or infinite values")
            if np.isinf(mfcc).any() or not np.isfinite(waveform).all():
                raise NetworkInputError(f"{name}: clip {i} has infinite MFCCs or a non-finite waveform")
            mfccs.append(mfcc)
            waveforms.append(waveform)
            faces.append(face)
        return mfccs, waveforms, faces

    def _batch(self, inputs, index):
        return inputs.batch(index)

    def _build_network(self, n_classes):
        return MamievaNetwork(
            n_classes, self.n_coefficients_, self.waveform_samples, faces=self.face_shape_ is not None,
            mfcc_channels=self.mfcc_channels,
            waveform_filters=tuple(self.waveform_filters), waveform_kernels=tuple(self.waveform_kernels),
            waveform_pools=tuple(self.waveform_pools), waveform_strides=tuple(self.waveform_strides),
            face_channels=tuple(self.face_channels), encoding_size=self.encoding_size,
            hidden_units=self.hidden_units, dropout=self.dropout)

    def modality_weights(self, X):
        """Attention weights ``omega`` per clip.

        Parameters
        ----------
        X : sequence of (mfcc, waveform, faces)

        Returns
        -------
        np.ndarray [shape=(n, 2)]
            ``(speech, face)`` weights; each row is non-negative and sums to 1; ``(1, 0)`` for a
            clip without faces or a speech-only model.
        """
        check_is_fitted(self, "network_")
        inputs = self._prepare(X, fitting=False)
        self.network_.eval()
        with torch_threads(self.n_threads), torch.no_grad():
            omega = torch.cat([self.network_.fuse(*inputs.batch(np.arange(start, min(start + 256, len(inputs)))))[1]
                               for start in range(0, len(inputs), 256)])
        return omega.numpy().astype(np.float64)


def _z_normalise(waveform):
    """Zero mean and unit variance (a constant signal becomes zeros), as float32."""
    centred = waveform - waveform.mean()
    scale = centred.std()
    return (centred / scale if scale > 0 else centred).astype(np.float32)
