"""``modelbalance analyze SOURCE``: layer-wise spectral report as a table, CSV/JSON and plots."""

from __future__ import annotations

import argparse
import difflib
import re
from pathlib import Path

import torch

from .main import UsageError

EXAMPLES = """examples:
  modelbalance analyze bert-base-uncased --out report/
  modelbalance analyze ./my_model_folder --include 'encoder' --xmin ks
  modelbalance analyze mypkg.models:build_model --dtype float64
  modelbalance analyze path/to/mymodels.py:build --no-relative
  modelbalance analyze checkpoint.safetensors --out report/ --plot-layer encoder.layer.0.output.dense
  modelbalance analyze ckpt.pt    # torch.save({"model": model.state_dict(), "opt": ...}) works too

SOURCE module:factory: an installed module or one in the current folder (mymodels:build), or a file anywhere
(path/to/mymodels.py:build); the factory is called with no arguments and returns an nn.Module.
"""


def register(sub) -> None:
    p = sub.add_parser(
        "analyze",
        help="per-layer heavy-tail spectral analysis of a model",
        description="Layer-wise heavy-tail spectral report of a model: a table on the console, CSV/JSON and "
        "plots with --out.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "source",
        help="HF model id or folder, module:factory or path/to/file.py:factory, or a .pt/.safetensors "
        "state dict or checkpoint",
    )
    p.add_argument("--out", type=Path, help="folder for layers.csv, layers.json, summary.txt and PNG plots")
    p.add_argument(
        "--xmin",
        default="fixed",
        help="'fixed' (index N/xmin_pos, default), 'peak', 'ks' (Clauset et al.) or a number",
    )
    p.add_argument(
        "--xmin-pos", type=float, default=2.0, help="divisor for --xmin fixed: 2 = median (default)"
    )
    p.add_argument("--dtype", choices=["float32", "float64"], default="float32", help="eigensolver precision")
    p.add_argument("--include", action="append", metavar="REGEX", help="only layers whose name matches")
    p.add_argument("--exclude", action="append", metavar="REGEX", help="skip layers whose name matches")
    p.add_argument("--types", help="comma-separated module class names, e.g. Linear,Conv2d")
    p.add_argument("--embeddings", action="store_true", help="include nn.Embedding tables")
    p.add_argument(
        "--lora",
        choices=["effective", "delta", "base"],
        default="effective",
        help="what LoRA layers contribute: W + scaling*B@A (default), the update alone, or W",
    )
    p.add_argument("--no-spectral-conv", action="store_true", help="leave out FNO SpectralConv weights")
    p.add_argument("--farms", action="store_true", help="also compute FARMS alpha (slower)")
    p.add_argument(
        "--no-relative", action="store_true", help="skip alpha relative to same-shape random matrices"
    )
    p.add_argument("--min-eigs", type=int, default=10, help="minimum eigenvalues to fit a layer (default 10)")
    p.add_argument("--skip-nonfinite", action="store_true", help="skip layers with NaN/Inf weights (warn)")
    p.add_argument("--device", help="move the model here first (e.g. cuda); default: where it is loaded")
    p.add_argument("--plot-layer", help="layer whose ESD is plotted (default: the first fitted one)")
    p.add_argument("--rows", type=int, default=0, help="print at most this many table rows (0 = all)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(handler=run)


def _xmin(value: str):
    if value in ("fixed", "peak", "ks"):
        return value
    try:
        number = float(value)
    except ValueError:
        raise UsageError(f"--xmin must be fixed, peak, ks or a positive number, got {value!r}") from None
    if not number > 0:
        raise UsageError(f"--xmin must be positive, got {value}")
    return number


def run(args) -> int:
    from modelbalance.spectral import FitConfig, analyze, extract_layers, extract_layers_from_state_dict
    from modelbalance.spectral.analyze import EigensolverError, NonFiniteWeightsError

    from .sources import first_line, load_source

    xmin = _xmin(args.xmin)
    if args.xmin_pos <= 1:
        raise UsageError(f"--xmin-pos must be > 1, got {args.xmin_pos}")
    try:  # the rest of the fit options (e.g. --xmin inf, --xmin-pos nan), before a model is loaded
        FitConfig(xmin=xmin, xmin_pos=args.xmin_pos)
    except ValueError as err:
        raise UsageError(str(err)) from None
    if args.min_eigs < 2:
        raise UsageError(f"--min-eigs must be at least 2, got {args.min_eigs}")
    for pattern in (args.include or []) + (args.exclude or []):
        try:
            re.compile(pattern)
        except re.error as err:
            raise UsageError(f"invalid pattern {pattern!r}: {err}") from None
    if args.out is not None and args.out.exists() and not args.out.is_dir():
        raise UsageError(f"--out {args.out} exists and is not a folder")
    if args.plot_layer is not None and args.out is None:
        raise UsageError("--plot-layer writes esd.png into the --out folder: give --out DIR too")
    if args.rows < 0:
        raise UsageError(f"--rows must be 0 (all) or positive, got {args.rows}")
    if args.device:
        try:  # before loading the model; "cuda" without CUDA raises AssertionError, not RuntimeError
            torch.empty(0, device=args.device)
        except (RuntimeError, AssertionError) as err:
            raise UsageError(f"--device {args.device} is not usable here: {first_line(err)}") from None

    source = load_source(args.source)
    dtype = torch.float64 if args.dtype == "float64" else torch.float32
    options = dict(
        xmin=xmin,
        xmin_pos=args.xmin_pos,
        dtype=dtype,
        relative=not args.no_relative,
        farms=args.farms,
        min_eigs=args.min_eigs,
        nonfinite="skip" if args.skip_nonfinite else "raise",
        progress=not args.no_progress,
    )
    try:
        model = source.model
        if model is not None:
            if args.device:
                model = model.to(args.device)
            types = [t.strip() for t in args.types.split(",")] if args.types else None
            layers = extract_layers(
                model,
                include=args.include,
                exclude=args.exclude,
                types=types,
                lora=args.lora,
                embeddings=args.embeddings,
                spectral_conv=not args.no_spectral_conv,
            )
        else:
            state = source.state_dict
            if args.device:
                state = {k: v.to(args.device) if isinstance(v, torch.Tensor) else v for k, v in state.items()}
            layers = extract_layers_from_state_dict(
                state, include=args.include, exclude=args.exclude, embeddings=args.embeddings
            )
        if not layers:  # before any progress bar, so the error stays one line
            raise UsageError(
                f"no analysable layers in {source.description} (check --include/--exclude/--types)"
            )
        if args.plot_layer is not None:  # before the analysis, so a typo costs nothing and writes nothing
            _check_plot_layer(args.plot_layer, [layer.name for layer in layers])
        report = analyze(model, layers=layers, **options)
    # The library's messages name its keywords; say the flags instead.
    except NonFiniteWeightsError as err:
        raise UsageError(
            f"layer {err.layer!r} has NaN or Inf weights; pass --skip-nonfinite to skip such layers"
        ) from None
    except EigensolverError as err:
        fix = "use --dtype float64" if args.dtype == "float32" else "please report it with the weights"
        raise UsageError(
            f"layer {err.layer!r}: the eigensolver returned NaN or Inf eigenvalues in {args.dtype}; {fix}"
        ) from None
    except (ValueError, RuntimeError) as err:
        raise UsageError(first_line(err)) from None

    print(f"modelbalance analyze: {source.description}")
    print(report.table(max_rows=args.rows or None))
    print()
    print(report.summary())
    if args.xmin == "ks" and not args.no_relative:
        # a random matrix's spectrum has no power-law tail, so its KS fit lands on a few top eigenvalues
        print(
            "note: with --xmin ks, alpha_relative is noisy (the same-shape Gaussian reference has no power-law "
            "tail, and its KS fit rests on a few top eigenvalues); compare raw alpha, or use --xmin fixed"
        )
    if args.out is not None:
        write_outputs(report, args.out, args.plot_layer)
    return 0


def _check_plot_layer(name: str, names: list[str]) -> None:
    if name in names:
        return
    close = difflib.get_close_matches(name, names, n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    shown = ", ".join(names[:10]) + (" ..." if len(names) > 10 else "")
    raise UsageError(f"--plot-layer: no layer named {name!r}{hint}; layers are: {shown}")


def write_outputs(report, out: Path, plot_layer: str | None = None) -> None:
    out.mkdir(parents=True, exist_ok=True)
    report.to_csv(out / "layers.csv")
    report.to_json(out / "layers.json")
    (out / "summary.txt").write_text(report.summary() + "\n")
    report.plot_alphas(path=out / "alpha_per_layer.png")
    written = ["layers.csv", "layers.json", "summary.txt", "alpha_per_layer.png"]
    try:
        if plot_layer is not None:
            report[plot_layer]  # KeyError with the known names when wrong
        report.plot_esd(plot_layer, path=out / "esd.png")
        written.append("esd.png")
    except KeyError as err:
        raise UsageError(str(err).strip('"')) from None
    except ValueError as err:  # no fitted layer: the table says why, the plot is just left out
        print(f"(no ESD plot: {err})")
    import matplotlib.pyplot as plt

    plt.close("all")
    print(f"\nwrote {', '.join(written)} to {out}/")
