"""The evaluation report: ``metrics.json`` (machine-readable), ``report.md`` and its figures.

``metrics.json`` accumulates: each run replaces the results with the same protocol x
modality x method x classifier and keeps the others, so evaluating several fusion methods
one after another builds one table.  ``report.md`` and the confusion and per-class figures
are redrawn from the merged results every time.  Every file is written to a temporary name
and moved into place (``os.replace``), so an interrupted run never leaves half a report.
Figures are drawn with matplotlib's Agg canvas (no display needed).
"""

import json
import re
from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from extract.atomic import atomic_path

SCHEMA = "emofuse-metrics/1"
PROTOCOL_ORDER = ("speaker", "loso", "manifest", "random")
MODALITY_ORDER = ("audio", "video", "fused")
RESULT_KEY = ("protocol", "modality", "method", "classifier")
RANDOM_PROTOCOL = "random"
BASELINE_METHOD = "egemaps-baseline"
READING_GUIDE = (
    "Scores are percentages, mean ± standard deviation over folds (ddof = 1). **UA** is the unweighted "
    "average recall (mean per-class recall, balanced accuracy); **accuracy** is overall accuracy (what "
    "speech-emotion papers call weighted accuracy, WA); **macro-F1** is the unweighted mean of per-class "
    "F1; **WA Mamieva** is the mean over classes of (TP·N/P + TN)/2N (Mamieva et al. 2023). "
    "`metrics.json` also holds `wa_adel`, the support-weighted mean of one-vs-rest per-class accuracy "
    "(Adel et al. 2023). `egemaps-baseline` is the field's standard baseline: eGeMAPS v02 functionals "
    "with a standardised, class-balanced logistic regression on the same folds. Bold: best UA."
)
PROTOCOL_TITLES = {
    "speaker": "Speaker-independent folds (protocol `speaker`)",
    "loso": "Leave one speaker out (protocol `loso`)",
    "manifest": "The corpus's own split (protocol `manifest`)",
    "random": "Random 80/20 split of clips (protocol `random`, for comparison only)",
}


def slug(text: str) -> str:
    """``text`` reduced to a safe file-name part (letters, digits, ``.``, ``_``, ``-``)."""
    return re.sub(r"[^A-Za-z0-9._-]+", "-", str(text)).strip("-") or "x"


def result_key(entry: dict) -> tuple:
    """The identity of a result: (protocol, modality, method, classifier)."""
    return tuple(entry[k] for k in RESULT_KEY)


def _sort_key(entry: dict) -> tuple:
    protocol, modality, method, classifier = result_key(entry)
    return (PROTOCOL_ORDER.index(protocol) if protocol in PROTOCOL_ORDER else len(PROTOCOL_ORDER), protocol,
            MODALITY_ORDER.index(modality) if modality in MODALITY_ORDER else len(MODALITY_ORDER),
            method, classifier)


def read_metrics(path: Path) -> dict:
    """The content of an existing ``metrics.json``; an empty one when there is none or it
    was written in another schema (its results cannot be merged and are dropped)."""
    path = Path(path)
    metrics = json.loads(path.read_text()) if path.is_file() else {}
    return metrics if metrics.get("schema") == SCHEMA else {"schema": SCHEMA, "results": []}


def merge_metrics(existing: dict, results: list, dataset: str) -> dict:
    """Merge new results into an existing ``metrics.json`` content.

    Parameters
    ----------
    existing : dict
        Content of the current file (``{"results": [...], ...}``).
    results : list of dict
        New entries; each replaces an existing entry with the same ``result_key``.
    dataset : str

    Returns
    -------
    metrics : dict
        ``schema``, ``dataset`` and ``results`` (sorted by protocol, modality, method,
        classifier).
    """
    merged = {result_key(entry): entry for entry in existing.get("results", [])}
    merged.update({result_key(entry): entry for entry in results})
    return {"schema": SCHEMA, "dataset": dataset, "results": sorted(merged.values(), key=_sort_key)}


def write_metrics(path: Path, metrics: dict) -> Path:
    """Write ``metrics`` as indented JSON, atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(metrics, indent=1) + "\n")
    return Path(path)


# ---------------------------------------------------------------------------------------------
# Figures
# ---------------------------------------------------------------------------------------------


def _save(figure: Figure, path: Path) -> Path:
    FigureCanvasAgg(figure)
    with atomic_path(path) as tmp:
        figure.savefig(tmp, format="png", dpi=100)
    return Path(path)


def plot_confusion(confusion, labels, title: str, path: Path) -> Path:
    """Draw a confusion matrix, rows normalised to recall, cells annotated with counts.

    Parameters
    ----------
    confusion : array-like [shape=(k, k)]
        Counts, true classes on rows.
    labels : list of str, length k
    title : str
    path : Path
        PNG to write.
    """
    confusion = np.asarray(confusion, dtype=float)
    recall = confusion / np.maximum(confusion.sum(axis=1, keepdims=True), 1)
    size = 1.2 + 0.55 * len(labels)
    figure = Figure(figsize=(size + 1.2, size), layout="constrained")
    ax = figure.subplots()
    image = ax.imshow(recall, cmap="Blues", vmin=0, vmax=1)
    for (i, j), count in np.ndenumerate(confusion):
        ax.text(j, i, f"{int(count)}", ha="center", va="center", fontsize=8,
                color="white" if recall[i, j] > 0.6 else "black")
    ax.set_xticks(range(len(labels)), labels, rotation=45, ha="right")
    ax.set_yticks(range(len(labels)), labels)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title, fontsize=9)
    figure.colorbar(image, ax=ax, label="fraction of the true class")
    return _save(figure, path)


def plot_per_class(entries: list, title: str, path: Path) -> Path:
    """Bar charts of per-class recall and F1 (pooled over folds), one bar group per class.

    Parameters
    ----------
    entries : list of dict
        Results sharing one label set, with ``per_class`` as ``metrics.summarise_folds``
        gives it; one bar series each, named ``<modality> <classifier>``.
    """
    labels = entries[0]["labels"]
    figure = Figure(figsize=(max(6.0, 0.45 * len(labels) * len(entries) + 3), 5.5), layout="constrained")
    axes = figure.subplots(2, 1, sharex=True)
    width = 0.8 / len(entries)
    for n, entry in enumerate(entries):
        for ax, key in zip(axes, ("recall", "f1")):
            ax.bar(np.arange(len(labels)) + (n - (len(entries) - 1) / 2) * width,
                   [entry["per_class"][label][key] for label in labels], width,
                   label=f"{entry['modality']} {entry['classifier']}")
    for ax, name in zip(axes, ("recall", "F1")):
        ax.set_ylabel(name)
        ax.set_ylim(0, 1)
        ax.grid(axis="y", alpha=0.3)
    axes[1].set_xticks(range(len(labels)), labels, rotation=30, ha="right")
    figure.suptitle(title, fontsize=9)
    figure.legend(*axes[0].get_legend_handles_labels(), loc="outside upper center", ncol=len(entries), fontsize=8)
    return _save(figure, path)


def plot_embedding(embedding, labels, title: str, path: Path) -> Path:
    """Scatter a 2-D embedding [shape=(n, 2)] of clips, coloured by their labels [shape=(n,)]."""
    embedding, labels = np.asarray(embedding), np.asarray(labels)
    figure = Figure(figsize=(6.5, 5), layout="constrained")
    ax = figure.subplots()
    for label in sorted(set(labels.tolist())):
        points = embedding[labels == label]
        ax.scatter(points[:, 0], points[:, 1], s=14, alpha=0.75, label=label)
    ax.set_xlabel("component 1")
    ax.set_ylabel("component 2")
    ax.legend(fontsize=7, markerscale=1.2)
    ax.set_title(title, fontsize=9)
    return _save(figure, path)


# ---------------------------------------------------------------------------------------------
# report.md
# ---------------------------------------------------------------------------------------------


def _pct(entry: dict, key: str) -> str:
    std = entry.get(f"{key}_std")
    return f"{100 * entry[key]:.1f}" + (f" ± {100 * std:.1f}" if std is not None and entry["n_folds"] > 1 else "")


def _results_table(entries: list) -> list:
    best_ua = max(e["ua"] for e in entries)
    lines = ["| modality | fusion method | classifier | UA (%) | accuracy (%) | macro-F1 (%) | WA Mamieva (%) |",
             "|---|---|---|---|---|---|---|"]
    for e in entries:
        ua = _pct(e, "ua")
        lines.append(f"| {e['modality']} | {e['method']} | {e['classifier']} | "
                     f"{f'**{ua}**' if e['ua'] == best_ua else ua} | {_pct(e, 'accuracy')} | "
                     f"{_pct(e, 'macro_f1')} | {_pct(e, 'wa_mamieva')} |")
    return lines


def _gap_section(by_protocol: dict, dataset: str, reference: str) -> list:
    lines = [f"## Speaker-independent (`{reference}`) vs random split", "",
             "The random split puts clips of the same speakers on both sides, as many published "
             "results do; the gap below is how much that inflates the scores.", ""]
    random = {result_key(e)[1:]: e for e in by_protocol.get(RANDOM_PROTOCOL, [])}
    paired = [(e, random[result_key(e)[1:]]) for e in by_protocol[reference] if result_key(e)[1:] in random]
    if paired:
        lines += ["| modality | fusion method | classifier | UA speaker-indep. (%) | UA random (%) | "
                  "accuracy speaker-indep. (%) | accuracy random (%) | UA gap (points) |",
                  "|---|---|---|---|---|---|---|---|"]
        lines += [f"| {s['modality']} | {s['method']} | {s['classifier']} | {_pct(s, 'ua')} | {_pct(r, 'ua')} | "
                  f"{_pct(s, 'accuracy')} | {_pct(r, 'accuracy')} | {100 * (r['ua'] - s['ua']):+.1f} |"
                  for s, r in paired]
        lines.append("")
    missing = sorted({e["method"] for e in by_protocol[reference]} - {e["method"] for e in random.values()}
                     - {BASELINE_METHOD})
    for method in missing:
        lines.append(f"No random-split results for method `{method}` yet: run `make fuse DATASET={dataset} "
                     f"METHOD={method} PROTOCOL=random`, then `make evaluate DATASET={dataset} METHOD={method}`.")
    return lines + [""]


def write_report(report_dir: Path, metrics: dict, changed=None) -> Path:
    """Draw the figures of the merged results and write ``report.md``.

    Parameters
    ----------
    report_dir : Path
        ``reports/<dataset>``; figures go to its ``figures/``.
    metrics : dict
        ``metrics.json`` content: ``dataset``, ``results`` and ``model`` (the best pipeline,
        or None).
    changed : set of (protocol, method), optional
        The groups whose results this run produced: their figures are redrawn, the others
        only when missing.  None redraws every figure.

    Returns
    -------
    path : Path
        The written ``report.md``.
    """
    report_dir = Path(report_dir)
    dataset, results = metrics["dataset"], metrics["results"]
    by_protocol = {}
    for entry in results:
        by_protocol.setdefault(entry["protocol"], []).append(entry)
    protocols = [p for p in PROTOCOL_ORDER if p in by_protocol] + sorted(set(by_protocol) - set(PROTOCOL_ORDER))
    reference = next((p for p in protocols if p != RANDOM_PROTOCOL), protocols[0])

    lines = [f"# Emotion recognition results: {dataset}", "",
             "Written by `python -m classify evaluate` from `metrics.json` beside this file.", "", READING_GUIDE, ""]
    if not any(e["method"] == BASELINE_METHOD for e in results):
        lines += ["The eGeMAPS baseline is missing: the feature store has no `egemaps` family "
                  "(openSMILE features).", ""]
    for protocol in protocols:
        folds = by_protocol[protocol][0]["folds"]
        lines += [f"## {PROTOCOL_TITLES.get(protocol, f'Protocol `{protocol}`')}", "",
                  f"{len(folds)} fold(s); test speakers per fold: "
                  + "; ".join(", ".join(map(str, f["test_speakers"])) for f in folds) + ".", ""]
        lines += _results_table(by_protocol[protocol]) + [""]
    lines += _gap_section(by_protocol, dataset, reference)
    lines += _best_section(max(by_protocol[reference], key=lambda e: (e["ua"], e["accuracy"])))
    lines += _figure_section(report_dir, by_protocol, protocols, reference, changed)
    lines += _model_section(metrics.get("model"), dataset)
    path = report_dir / "report.md"
    with atomic_path(path) as tmp:
        tmp.write_text("\n".join(lines) + "\n")
    return path


def _best_section(best: dict) -> list:
    """Per-class scores and per-speaker accuracy of the best pipeline."""
    lines = [f"## Best pipeline under `{best['protocol']}`: {best['modality']} / {best['method']} / "
             f"{best['classifier']}", "",
             f"UA {_pct(best, 'ua')} %, accuracy {_pct(best, 'accuracy')} %, macro-F1 {_pct(best, 'macro_f1')} %. "
             "Per-class figures pool the test clips of all folds.", "",
             "| class | precision (%) | recall (%) | F1 (%) | clips |", "|---|---|---|---|---|"]
    lines += [f"| {label} | {100 * s['precision']:.1f} | {100 * s['recall']:.1f} | {100 * s['f1']:.1f} | "
              f"{s['support']} |" for label, s in best["per_class"].items()]
    per_speaker = sorted((speaker, fold["fold"], acc) for fold in best["folds"]
                         for speaker, acc in fold["per_speaker_accuracy"].items())
    lines += ["", "| speaker | test fold | accuracy (%) |", "|---|---|---|"]
    lines += [f"| {speaker} | {fold} | {100 * acc:.1f} |" for speaker, fold, acc in per_speaker]
    return lines + [""]


def _model_section(model, dataset: str) -> list:
    lines = ["## Final model", ""]
    if model:
        return lines + [f"`model.joblib`: {model['modality']} / {model['method']} / {model['classifier']} "
                        f"(UA {100 * model['ua']:.1f} % under `{model['protocol']}`), refit on all clips. "
                        f"Predict new files with `python -m classify predict reports/{dataset}/model.joblib FILE...`."]
    return lines + ["No pipeline could be refit for prediction (see `classify.evaluate.save_best_model`)."]


def _figure_section(report_dir: Path, by_protocol: dict, protocols: list, reference: str, changed) -> list:
    """Draw confusion and per-class figures (best classifier per modality) and link them."""
    lines = ["## Figures", ""]
    for protocol in protocols:
        for method in sorted({e["method"] for e in by_protocol[protocol]}):
            redraw = changed is None or (protocol, method) in changed
            best_per_modality = []
            for modality in MODALITY_ORDER:
                entries = [e for e in by_protocol[protocol] if e["method"] == method and e["modality"] == modality]
                if entries:
                    best_per_modality.append(max(entries, key=lambda e: (e["ua"], e["accuracy"])))
            lines.append(f"### `{method}`, protocol `{protocol}`")
            lines.append("")
            for entry in best_per_modality:
                name = f"confusion_{slug(protocol)}_{slug(method)}_{entry['modality']}.png"
                if redraw or not (report_dir / "figures" / name).is_file():
                    plot_confusion(entry["confusion"], entry["labels"],
                                   f"{protocol}: {entry['modality']} / {method} / {entry['classifier']} "
                                   f"(UA {100 * entry['ua']:.1f} %), all folds", report_dir / "figures" / name)
                lines.append(f"![confusion {entry['modality']}](figures/{name})")
            name = f"per_class_{slug(protocol)}_{slug(method)}.png"
            if redraw or not (report_dir / "figures" / name).is_file():
                plot_per_class(best_per_modality, f"{protocol}: {method}, best classifier per modality",
                               report_dir / "figures" / name)
            lines += [f"![per-class {method}](figures/{name})", ""]
            space = f"space_{slug(method)}.png"
            if protocol == reference and (report_dir / "figures" / space).is_file():
                lines += [f"![fused space {method}](figures/{space})", ""]
    return lines
