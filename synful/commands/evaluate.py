"""``synful evaluate``: the CREMI synaptic-partner score of predicted pairs, with a sweep."""

from __future__ import annotations

from pathlib import PurePosixPath

from ..geometry import MASK_REGION_PREFIX
from ..settings.evaluate import ErrorSettings, EvaluateSettings
from ..settings.fields import (
    add_options,
    apply_settings,
    defaults,
    flag,
    settings_option,
    values_from,
)
from ..settings.workflow import WORKFLOW_KEYS

NAME = "evaluate"
HELP = "score predicted synaptic partners against ground truth (CREMI rule)"
DESCRIPTION = (
    "Score predicted synaptic partner pairs against ground truth with the official CREMI rule "
    "(labels from the ground-truth neuron_ids, both distances <= the matching threshold, "
    "Hungarian matching), optionally sweeping score thresholds (a prediction is kept when "
    "score >= threshold) and with Synful's variants (--filter-same-seg, --pre-only, "
    "--merge-radius). Writes the metrics JSON, and optionally the sweep as CSV, a "
    "precision-recall plot and every false negative and false positive with its cause "
    "(--errors-csv; docs/evaluation.md lists the causes)."
)


def add_arguments(parser) -> None:
    parser.add_argument(
        "--pred",
        required=True,
        metavar="SYNAPSES",
        help="predicted pairs (.parquet, .csv or CREMI .hdf)",
    )
    parser.add_argument(
        "--gt",
        required=True,
        metavar="GT",
        help="CREMI HDF5 with neuron_ids and annotations, or a sample store X.zarr beside X.parquet",
    )
    add_options(parser, EvaluateSettings)
    parser.add_argument(
        "--mask",
        default=None,
        metavar="STORE.zarr/ARRAY",
        help="evaluate only pairs whose post point lies inside this mask (e.g. "
        f"X.zarr/masks/validation; {MASK_REGION_PREFIX}NAME: that mask of the sample store --gt)",
    )
    parser.add_argument(
        "--out", required=True, metavar="METRICS.json", help="metrics JSON to write"
    )
    parser.add_argument(
        "--sweep-csv", default=None, metavar="SWEEP.csv", help="also write the sweep as CSV"
    )
    parser.add_argument(
        "--plot", default=None, metavar="PR.png", help="also write a precision-recall plot"
    )
    parser.add_argument(
        "--errors-csv",
        default=None,
        metavar="ERRORS.csv",
        help="also write every false negative and false positive with its cause (one row each), "
        "at the best score threshold of the sweep (all predictions without a sweep)",
    )
    parser.add_argument(
        "--predictions",
        default=None,
        metavar="PRED.zarr",
        help="the prediction store the pairs were extracted from: tells misses the post "
        "indicator never reached the extraction threshold (below_threshold) from misses "
        "extraction lost (lost_in_extraction); for --errors-csv",
    )
    parser.add_argument(
        "--vectors",
        default=None,
        metavar="OTHER.zarr",
        help="take partner_vectors from this store (as for synful extract --vectors)",
    )
    add_options(parser, ErrorSettings)
    settings_option(parser, NAME)


def run(args) -> int:
    from ..errors import SynfulError
    from ..evaluate import evaluate_files, evaluate_files_with_errors, write_results
    from ..evaluate.inputs import is_sample_store
    from ..io.sample_store import default_synapse_table
    from ..outputs import FILE, claim, output

    apply_settings(args, NAME, (EvaluateSettings, ErrorSettings), skip=WORKFLOW_KEYS[NAME])
    if _names_a_mask_of_gt(args.mask):
        if not is_sample_store(args.gt):
            raise SynfulError("--mask", f"{args.mask} names a mask of --gt, a sample store")
        args.mask = f"{args.gt}/{args.mask}"
    if args.score_thresholds is None and (args.sweep_csv or args.plot):
        raise SynfulError(
            "--sweep-csv/--plot", "need a score-threshold sweep; pass --score-thresholds"
        )
    if args.errors_csv is None:
        for name in ("predictions", "vectors", *defaults(ErrorSettings)):
            if getattr(args, name) is not None:
                raise SynfulError(flag(name), "needs --errors-csv")
    if args.predictions is None:
        for name in ("vectors", "extraction_threshold"):
            if getattr(args, name) is not None:
                raise SynfulError(flag(name), "needs --predictions")
    outputs = [output(p, FILE) for p in (args.out, args.sweep_csv, args.plot, args.errors_csv) if p]
    inputs = [args.pred, args.gt, args.mask, args.predictions, args.vectors]
    if is_sample_store(args.gt):
        inputs.append(default_synapse_table(args.gt))
    options = dict(mask=args.mask, **values_from(EvaluateSettings, args))
    errors = None
    with claim(outputs, inputs):
        if args.errors_csv is None:
            metrics = evaluate_files(args.pred, args.gt, **options)
        else:
            metrics, errors = evaluate_files_with_errors(
                args.pred,
                args.gt,
                predictions=args.predictions,
                vectors=args.vectors,
                **values_from(ErrorSettings, args),
                **options,
            )
        write_results(
            metrics,
            args.out,
            sweep_csv=args.sweep_csv,
            plot=args.plot,
            errors=errors,
            errors_csv=args.errors_csv,
        )
    if not args.quiet:
        print(
            f"tp {metrics['tp']} fp {metrics['fp']} fn {metrics['fn']}  precision "
            f"{metrics['precision']:.4f} recall {metrics['recall']:.4f} F {metrics['fscore']:.4f}"
        )
        best = metrics.get("best")
        if best is not None:
            print(
                f"best F {best['fscore']:.4f} (precision {best['precision']:.4f}, recall "
                f"{best['recall']:.4f}) at score >= {best['score_threshold']:g}"
            )
        if errors is not None:
            _print_errors(errors)
    return 0


def _names_a_mask_of_gt(mask: str | None) -> bool:
    """``masks/NAME``, no store named: a mask of the sample store ``--gt``."""
    return (
        mask is not None
        and mask.startswith(MASK_REGION_PREFIX)
        and not any(part.endswith(".zarr") for part in PurePosixPath(mask).parts)
    )


def _print_errors(errors) -> None:
    from ..evaluate.errors import FN_CAUSES, FP_CAUSES, at_threshold, count_errors

    if len(errors) == 0:
        print("no errors")
    for threshold in errors["score_threshold"].drop_duplicates():
        threshold = None if threshold != threshold else float(threshold)  # NaN: no threshold
        counts = count_errors(at_threshold(errors, threshold))
        where = "all predictions" if threshold is None else f"score >= {threshold:g}"
        for kind, causes in (("fn", FN_CAUSES), ("fp", FP_CAUSES)):
            parts = [f"{c} {counts[f'{kind}_{c}']}" for c in causes if counts[f"{kind}_{c}"]]
            print(f"{kind} {counts[kind]} at {where}" + (f": {', '.join(parts)}" if parts else ""))
