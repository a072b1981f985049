"""Stage 4: classify fused features, score them honestly, report, and predict new files.

The path of one evaluation: fused folds (``cache/<dataset>/fused/...``) ->
``classifiers.make_classifier`` -> ``evaluate.cross_validate`` -> ``metrics.fold_scores``
(the full table) -> ``select.nested_selection`` (the method chosen inside the training
speakers: the headline figure) -> ``report.write_report`` (``reports/<dataset>/``) ->
``select.select_model`` (the same choice on all clips, refitted: ``model.joblib``) ->
``predict.predict_files`` for new audio or video files.
"""
