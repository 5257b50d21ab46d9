"""`tagmill audit sample` and `tagmill audit serve`: a human-reviewed sample of a run's tag decisions."""

from __future__ import annotations

import argparse

from tagmill.engine import storage
from tagmill.engine.report.review import SAMPLE_JSONL, audit_dir, draw_sample
from tagmill.engine.report.estimates_html import FIGURES, estimate_text


def add_audit(commands, command) -> None:
    """The `audit` command and its two subcommands; `command` makes a subcommand parser (cli._command)."""
    audit = commands.add_parser("audit", help="Review a sample of a run's tag decisions by hand.",
                                description="Estimate how right a run's tags are from a human-reviewed sample.")
    steps = audit.add_subparsers(required=True, metavar="STEP")
    _add_sample(steps, command)
    _add_serve(steps, command)


def _add_sample(steps, command) -> None:
    sub = command(steps, "sample", _sample, "Draw a stratified random sample of a run's (image, tag) decisions "
                  "into OUT/audit/sample.jsonl; drawing more, with the same seed, adds to it.")
    sub.set_defaults(name="audit sample")
    sub.add_argument("output", help="the run's output folder")
    sub.add_argument("--per-stratum", type=int, default=50, help="decisions per stratum (default 50)")
    sub.add_argument("--seed", type=int, default=0, help="the sample's seed (default 0)")
    sub.add_argument("--top-tags", type=int, default=0,
                     help="give the final tags of the K most frequent tags a stratum each (default 0)")


def _sample(args: argparse.Namespace) -> None:
    drawn = draw_sample(args.output, args.per_stratum, args.seed, args.top_tags)
    print(f"added {drawn['added']} items; {drawn['total']} in {storage.join(audit_dir(args.output), SAMPLE_JSONL)}")
    for name, stratum in drawn["strata"].items():
        print(f"  {name:<32} {stratum['sampled']:>5} of {stratum['size']}")
    print(f"review them: tagmill audit serve {args.output}")


def _add_serve(steps, command) -> None:
    sub = command(steps, "serve", _serve, "Serve the review page for a run's sample: one image and tag at a time, "
                  "answered with the keyboard; every answer goes to OUT/audit/judgments.jsonl.")
    sub.set_defaults(name="audit serve")
    sub.add_argument("output", help="the run's output folder (with a sample from `tagmill audit sample`)")
    sub.add_argument("--port", type=int, default=8765, help="default 8765; 0 takes a free one")
    sub.add_argument("--reviewer", help="the name judgments are recorded under (default: the user name)")
    sub.add_argument("--host", default="127.0.0.1",
                     help="the interface to listen on (default 127.0.0.1: this machine only)")


def _serve(args: argparse.Namespace) -> None:
    from tagmill.pipeline.review_server import serve

    try:
        serve(args.output, args.reviewer, args.host, args.port)
    except OSError as err:  # the port is taken, the interface does not exist
        raise ValueError(f"cannot listen on {args.host}:{args.port}: {err.strerror or err}") from None


def print_human_estimates(report: dict) -> None:
    """The report's human-verified figures as lines for the terminal."""
    human = report.get("human_estimates")
    if not human:
        return
    counts = human["judgments"]
    print(f"human-verified ({counts['items']} items judged, {counts['unsure']} unsure, "
          f"{counts['disputed']} disputed):")
    for key, label, _ in FIGURES:
        _print_figure(f"precision, {label}", human[key])
    for rule, figure in sorted(human["rules"].items()):
        _print_figure(f"right among {rule} drops", figure)


def _print_figure(label: str, figure: dict) -> None:
    value, interval = estimate_text(figure)
    print(f"  {label:<40} {value} {interval} from {figure['judgments']} judgments")
