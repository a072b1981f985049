"""The evaluation report: ``metrics.json`` (machine-readable), ``report.md`` and its figures.

``metrics.json`` accumulates: each run replaces the results with the same protocol x
modality x method x classifier and keeps the others, so evaluating several fusion methods
one after another builds one table; the ``selected`` (nested selection) figure of a protocol
is replaced by the latest run's.  ``report.md`` opens with the selected figures (the
headline) and then shows the full table, whose maximum is optimistic: it is chosen on the
test folds.  ``report.md`` and the confusion and per-class figures
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
from fusion.speaker_norm import ADAPTIVE_LABEL, enrol_count, parse_method_dir

from .frames import SEQUENCE_METHOD

SCHEMA = "emofuse-metrics/1"
PROTOCOL_ORDER = ("speaker", "loso", "manifest", "random")
MODALITY_ORDER = ("audio", "video", "text", "fused")
RESULT_KEY = ("protocol", "modality", "method", "classifier")
RANDOM_PROTOCOL = "random"
BASELINE_METHOD = "egemaps-baseline"
BASELINES = {BASELINE_METHOD: "egemaps", "compare-baseline": "compare"}
"""Baseline rows (method name -> the openSMILE family it reads), each where the store has it."""
READING_GUIDE = (
    "Scores are percentages, mean ± standard deviation over folds (ddof = 1). **UA** is the unweighted "
    "average recall (mean per-class recall, balanced accuracy); **accuracy** is overall accuracy (what "
    "speech-emotion papers call weighted accuracy, WA); **macro-F1** is the unweighted mean of per-class "
    "F1; **WA Mamieva** is the mean over classes of (TP·N/P + TN)/2N (Mamieva et al. 2023). "
    "`metrics.json` also holds `wa_adel`, the support-weighted mean of one-vs-rest per-class accuracy "
    "(Adel et al. 2023). `egemaps-baseline` is the field's standard baseline: eGeMAPS v02 functionals "
    "with a standardised, class-balanced logistic regression on the same folds; `compare-baseline` is the "
    "same with the ComParE 2016 functionals (6,373), where the store has them. Bold: best UA."
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


def merge_metrics(existing: dict, results: list, dataset: str, *, selected=None, selected_adaptive=None) -> dict:
    """Merge new results into an existing ``metrics.json`` content.

    Parameters
    ----------
    existing : dict
        Content of the current file (``{"results": [...], ...}``).
    results : list of dict
        New entries; each replaces an existing entry with the same ``result_key``.
    dataset : str
    selected, selected_adaptive : dict, optional
        protocol -> the nested-selection figure (adaptive: protocol -> mode -> figure); each
        replaces the existing one of its protocol.

    Returns
    -------
    metrics : dict
        ``schema``, ``dataset``, ``results`` (sorted by protocol, modality, method,
        classifier), ``selected`` and ``selected_adaptive``.
    """
    merged = {result_key(entry): entry for entry in existing.get("results", [])}
    merged.update({result_key(entry): entry for entry in results})
    adaptive = existing.get("selected_adaptive", {}) | {
        p: existing.get("selected_adaptive", {}).get(p, {}) | modes for p, modes in (selected_adaptive or {}).items()}
    return {"schema": SCHEMA, "dataset": dataset, "results": sorted(merged.values(), key=_sort_key),
            "selected": existing.get("selected", {}) | (selected or {}), "selected_adaptive": adaptive}


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


def method_label(entry: dict) -> str:
    """The method of a result as the report shows it, with the adaptation label if it has one."""
    return entry["method"] + (f" ({ADAPTIVE_LABEL})" if entry.get("adaptation") else "")


def _results_table(entries: list) -> list:
    best_ua = max(e["ua"] for e in entries)
    lines = ["| modality | fusion method | classifier | UA (%) | accuracy (%) | macro-F1 (%) | WA Mamieva (%) |",
             "|---|---|---|---|---|---|---|"]
    for e in entries:
        ua = _pct(e, "ua")
        lines.append(f"| {e['modality']} | {method_label(e)} | {e['classifier']} | "
                     f"{f'**{ua}**' if e['ua'] == best_ua else ua} | {_pct(e, 'accuracy')} | "
                     f"{_pct(e, 'macro_f1')} | {_pct(e, 'wa_mamieva')} |")
    return lines


def _chosen_text(chosen: dict) -> str:
    words = {"stip_bow": chosen["stip_bow"]} if chosen.get("stip_bow") else {}
    params = ", ".join(f"{k}={v}" for k, v in {**chosen["params"], **words}.items())
    return (f"{chosen['modality']} / {chosen['method']}{f' ({params})' if params else ''} / "
            f"{chosen['classifier']}")


def _selected_section(metrics: dict, protocols: list) -> list:
    """The headline: nested-selection figures per protocol, adaptive ones labelled."""
    selected, adaptive = metrics.get("selected", {}), metrics.get("selected_adaptive", {})
    rows = [(p, "none", selected[p]) for p in protocols if p in selected]
    rows += [(p, mode, adaptive[p][mode]) for p in protocols for mode in _mode_order(adaptive.get(p, {}))]
    if not rows:
        return []
    lines = ["## Selected pipeline (nested selection): the headline", "",
             "Within each outer fold, every candidate (modality x fusion method x classifier) was scored by "
             "speaker-grouped cross-validation on that fold's training speakers only; the best was refitted on "
             "them and scored once on the fold's test speakers. These outer scores are the figure to quote. "
             "Speaker-adaptive rows used unlabelled clips of the test speaker (all of them, or K enrolment "
             "clips that are then not scored).", "",
             "| protocol | adaptation | UA (%) | accuracy (%) | macro-F1 (%) | outer folds | candidates |",
             "|---|---|---|---|---|---|---|"]
    for protocol, mode, figure in rows:
        lines.append(f"| {protocol} | {_mode_text(mode)} | **{_pct(figure, 'ua')}** | {_pct(figure, 'accuracy')} | "
                     f"{_pct(figure, 'macro_f1')} | {figure['n_folds']} | {len(figure['candidates'])} |")
    lines.append("")
    for protocol, mode, figure in rows:
        counts = {}
        for chosen in figure["chosen"]:
            counts[_chosen_text(chosen)] = counts.get(_chosen_text(chosen), 0) + 1
        lines.append(f"Chosen under `{protocol}`, {_mode_text(mode)}: "
                     + "; ".join(f"{text} in {n} of {figure['n_folds']} fold(s)" for text, n in counts.items())
                     + (f" ({figure['how']}, {max(figure['n_inner_folds'])} inner folds at most)."
                        if max(figure["n_inner_folds"]) else " (the only candidate: nothing to choose)."))
        lines.append("")
    return lines


def _mode_order(modes) -> list:
    """Adaptation modes by K, ``all`` last."""
    return sorted(modes, key=lambda m: (m == "all", enrol_count(m) or 0))


def _mode_text(mode: str) -> str:
    if mode == "none":
        return "none"
    return f"{ADAPTIVE_LABEL}: {'all clips' if mode == 'all' else f'{enrol_count(mode)} enrolment clips'}"


def _adaptation_section(metrics: dict, protocols: list) -> list:
    """UA against the enrolment size K, beside no adaptation and all clips."""
    lines = []
    for protocol in protocols:
        entries = [e for e in metrics["results"] if e["protocol"] == protocol and e["method"] not in BASELINES]
        by_row = {}
        for e in entries:
            method, mode = parse_method_dir(e["method"])
            by_row.setdefault((e["modality"], method, e["classifier"]), {})[mode] = e
        selected = {"none": metrics.get("selected", {}).get(protocol)} | metrics.get("selected_adaptive", {}).get(
            protocol, {})
        selected = {mode: figure for mode, figure in selected.items() if figure}
        adaptive_rows = {row: modes for row, modes in by_row.items() if set(modes) - {"none"}}
        if not adaptive_rows and len(selected) < 2:
            continue
        modes = _mode_order(({m for modes in adaptive_rows.values() for m in modes} | set(selected)) - {"none"})
        columns = ["none", *modes]
        lines += [f"## Speaker adaptation under `{protocol}`: UA (%) against the enrolment size", "",
                  f"Columns: no adaptation, then {ADAPTIVE_LABEL} with K enrolment clips per test speaker "
                  "(`enrol:K`, not scored) and with all of its clips.", "",
                  "| modality | fusion method | classifier | " + " | ".join(
                      "none" if m == "none" else ("all clips" if m == "all" else f"K = {enrol_count(m)}")
                      for m in columns) + " |",
                  "|---|---|---|" + "---|" * len(columns)]
        if len(selected) > 1:
            lines.append("| selected | nested selection | selected | " + " | ".join(
                _pct(selected[m], "ua") if m in selected else "" for m in columns) + " |")
        for (modality, method, classifier), found in sorted(adaptive_rows.items()):
            lines.append(f"| {modality} | {method} | {classifier} | " + " | ".join(
                _pct(found[m], "ua") if m in found else "" for m in columns) + " |")
        lines.append("")
    return lines


def _gap_section(by_protocol: dict, dataset: str, reference: str) -> list:
    lines = [f"### Speaker-independent (`{reference}`) vs random split", "",
             "The random split puts clips of the same speakers on both sides, as many published "
             "results do; the gap below is how much that inflates the scores.", ""]
    random = {result_key(e)[1:]: e for e in by_protocol.get(RANDOM_PROTOCOL, [])}
    paired = [(e, random[result_key(e)[1:]]) for e in by_protocol[reference] if result_key(e)[1:] in random]
    if paired:
        lines += ["| modality | fusion method | classifier | UA speaker-indep. (%) | UA random (%) | "
                  "accuracy speaker-indep. (%) | accuracy random (%) | UA gap (points) |",
                  "|---|---|---|---|---|---|---|---|"]
        lines += [f"| {s['modality']} | {method_label(s)} | {s['classifier']} | {_pct(s, 'ua')} | {_pct(r, 'ua')} | "
                  f"{_pct(s, 'accuracy')} | {_pct(r, 'accuracy')} | {100 * (r['ua'] - s['ua']):+.1f} |"
                  for s, r in paired]
        lines.append("")
    missing = sorted({e["method"] for e in by_protocol[reference]} - {e["method"] for e in random.values()}
                     - {*BASELINES, SEQUENCE_METHOD})
    for method in missing:
        name, mode = parse_method_dir(method)
        norm = "" if mode == "none" else f" SNORM={mode}"
        lines.append(f"No random-split results for method `{method}` yet: run `make fuse DATASET={dataset} "
                     f"METHOD={name} PROTOCOL=random{norm}`, then `make evaluate DATASET={dataset} METHOD={name} "
                     f"PROTOCOL=random{norm}`.")
    return lines + [""]


def write_report(report_dir: Path, metrics: dict, changed=None) -> Path:
    """Draw the figures of the merged results and write ``report.md``.

    Parameters
    ----------
    report_dir : Path
        ``reports/<dataset>``; figures go to its ``figures/``.
    metrics : dict
        ``metrics.json`` content: ``dataset``, ``results``, ``selected``,
        ``selected_adaptive`` and ``model`` (the saved model's selection, or None).
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
    independent = [p for p in protocols if not any(e.get("warning") for e in by_protocol[p])]
    reference = independent[0] if independent else protocols[0]

    lines = [f"# Emotion recognition results: {dataset}", "",
             "Written by `python -m classify evaluate` from `metrics.json` beside this file.", "", READING_GUIDE, ""]
    lines += _selected_section(metrics, protocols)
    lines += _adaptation_section(metrics, protocols)
    lines += ["## All results: the maximum over methods x classifiers is optimistic (chosen on the test folds)", "",
              "Every row below is scored on the test folds; picking the best row afterwards uses those folds, so "
              "the best row overstates what a method chosen without the test speakers achieves (see the selected "
              "pipeline above).", ""]
    if not any(e["method"] == BASELINE_METHOD for e in results):
        lines += ["The eGeMAPS baseline is missing: the feature store has no `egemaps` family "
                  "(openSMILE features).", ""]
    if any(e["method"] == SEQUENCE_METHOD for e in results):
        lines += [f"Method `{SEQUENCE_METHOD}`: sequence classifiers read the clips' frame-level streams, not "
                  "the output of a fusion method, so they appear once whatever method was evaluated.", ""]
    for protocol in protocols:
        folds = by_protocol[protocol][0]["folds"]
        warning = next((e["warning"] for e in by_protocol[protocol] if e.get("warning")), None)
        lines += [f"### {PROTOCOL_TITLES.get(protocol, f'Protocol `{protocol}`')}", ""]
        lines += [f"**Warning: {warning}.**", ""] if warning else []
        lines += [f"{len(folds)} fold(s); test speakers per fold: "
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
    """Per-class scores and per-speaker accuracy of the best row of the table."""
    lines = [f"### Best row under `{best['protocol']}` (optimistic): {best['modality']} / {method_label(best)} / "
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
    if not model:
        return lines + ["No model: there is no speaker-independent nested selection (see "
                        "`classify.evaluate.save_model`)."]
    lines.append(f"`model.joblib`: {_chosen_text(model['none']['chosen'])}, {_how_chosen(model['none'])} among the "
                 f"candidates of protocol `{model['protocol']}`, then refitted on all clips, every step included. "
                 f"Predict new files with `python -m classify predict reports/{dataset}/model.joblib FILE...`.")
    if "adaptive" in model:
        lines += ["", f"Its {ADAPTIVE_LABEL} variant: {_chosen_text(model['adaptive']['chosen'])}, "
                  f"{_how_chosen(model['adaptive'])}; `predict ... --enrol DIR_OR_FILES` normalises with a "
                  "speaker's enrolment clips and uses it."]
    return lines


def _how_chosen(selection: dict) -> str:
    inner = selection["chosen"]["inner_ua"]
    return ("the only candidate" if inner is None
            else f"chosen by {selection['how']} (inner UA {100 * inner:.1f} %)")


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
            adaptive = f" ({ADAPTIVE_LABEL})" if best_per_modality[0].get("adaptation") else ""
            lines.append(f"### `{method}`{adaptive}, protocol `{protocol}`")
            lines.append("")
            for entry in best_per_modality:
                name = f"confusion_{slug(protocol)}_{slug(method)}_{entry['modality']}.png"
                if redraw or not (report_dir / "figures" / name).is_file():
                    plot_confusion(entry["confusion"], entry["labels"],
                                   f"{protocol}: {entry['modality']} / {method_label(entry)} / {entry['classifier']} "
                                   f"(UA {100 * entry['ua']:.1f} %), all folds", report_dir / "figures" / name)
                lines.append(f"![confusion {entry['modality']}](figures/{name})")
            name = f"per_class_{slug(protocol)}_{slug(method)}.png"
            if redraw or not (report_dir / "figures" / name).is_file():
                plot_per_class(best_per_modality, f"{protocol}: {method_label(best_per_modality[0])}, "
                               "best classifier per modality",
                               report_dir / "figures" / name)
            lines += [f"![per-class {method}](figures/{name})", ""]
            space = f"space_{slug(method)}.png"
            if protocol == reference and (report_dir / "figures" / space).is_file():
                lines += [f"![fused space {method}](figures/{space})", ""]
    return lines
