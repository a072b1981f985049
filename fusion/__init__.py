"""Stage 3: fuse audio and video features fold by fold, fitted on training speakers only.

The path of one run: feature store -> ``protocol.make_folds`` (speaker-independent by
default) -> per fold and modality, a ``methods`` pipeline (``concat.BlockConcat`` ->
``zebra.ZebraFeatureSelector`` / ``mfa.MarginalFisherAnalysis``) fitted on the training
side -> ``run.fuse`` writes ``cache/<dataset>/fused/<method>/<protocol>/``.
"""
