"""Stage 4: classify fused features, score them honestly, report, and predict new files.

The path of one evaluation: fused folds (``cache/<dataset>/fused/...``) ->
``classifiers.make_classifier`` -> ``evaluate.cross_validate`` -> ``metrics.fold_scores``
-> ``report.write_report`` (``reports/<dataset>/``) -> the best pipeline refit on all clips
-> ``predict.predict_files`` for new audio or video files.
"""
