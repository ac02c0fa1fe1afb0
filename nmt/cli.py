"""`nmt <verb>`: each verb parses its arguments, loads what it needs, calls one library function.

Users' mistakes (a bad file, config or option) end with one clear line on stderr and exit
status 1, never a traceback.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import TYPE_CHECKING, cast

from nmt.errors import NmtError

if TYPE_CHECKING:
    from nmt.decoding.translator import Translator
    from nmt.evaluation.perplexity import ReferenceLoss

log = logging.getLogger("nmt")


def cmd_data_fetch(args: argparse.Namespace) -> None:
    from nmt.data.corpus.recipe import fetch_corpus

    report = fetch_corpus(args.name, args.dir, cache_dir=args.cache_dir, with_gimp=args.with_gimp)
    print(report.table())


def cmd_train(args: argparse.Namespace) -> None:
    from nmt.config import load_config

    config = load_config(args.config, args.overrides)
    if args.dry_run:
        from nmt.data.tokenizer import TOKENIZER_FILE, Tokenizer
        from nmt.training.train import describe_model

        tokenizer_path = config.training.run_dir / TOKENIZER_FILE
        vocab_size = (
            Tokenizer.load(tokenizer_path).vocab_size
            if tokenizer_path.is_file()
            else config.data.vocab_size
        )
        print(describe_model(config, vocab_size))
        print("config is valid; --dry-run: not training")
        return
    from nmt.training.train import train

    result = train(config)
    print(
        f"stopped at step {result.step} ({result.stopped_because}); "
        f"checkpoints and best model in {result.run_dir}"
    )


def cmd_average(args: argparse.Namespace) -> None:
    from nmt.training.average import average_checkpoints

    chosen = average_checkpoints(args.run_dir, last=args.last, out_dir=args.output)
    names = f"{chosen[0].name} … {chosen[-1].name}"
    print(f"averaged {len(chosen)} checkpoints ({names}) into {args.output}")


def _decoding_options(args: argparse.Namespace, defaults: object) -> dict[str, float | int]:
    """Options given on the command line, else the model's config.decoding values."""
    names = ("beam_size", "length_penalty", "max_len_a", "max_len_b", "max_tokens")
    return {
        n: getattr(args, n) if getattr(args, n) is not None else getattr(defaults, n) for n in names
    }


def _load_translator(args: argparse.Namespace) -> tuple[Translator, dict[str, float | int]]:
    """The model directory's Translator, and the search options: the command line's, else the
    model's ``decoding`` section."""
    from nmt.decoding.translator import Translator
    from nmt.models.store import load_model_dir

    loaded = load_model_dir(args.model_dir, device=args.device)
    translator = Translator(
        loaded.model,
        loaded.tokenizer,
        device=args.device,
        max_positions=loaded.config.model.max_positions,
    )
    return translator, _decoding_options(args, loaded.config.decoding)


def cmd_translate(args: argparse.Namespace) -> None:
    from nmt.decoding.files import translate_file

    translator, options = _load_translator(args)
    translate_file(
        translator,
        input_path=args.input,
        output_path=args.output,
        nbest=args.nbest,
        progress=args.input is not None and not args.quiet,
        **options,  # type: ignore[arg-type]
    )


def cmd_evaluate(args: argparse.Namespace) -> None:
    from nmt.data.parallel import check_same_length, iter_lines
    from nmt.evaluation.scoring import score, score_files

    if args.model_dir is None:
        if args.hyp is None or args.ref is None:
            raise NmtError("evaluate needs --hyp and --ref (or MODEL_DIR --src S --ref R)")
        print(score_files(args.hyp, args.ref, tokenized_bleu=args.tokenized_bleu).report())
        return
    if args.src is None or args.ref is None:
        raise NmtError("evaluate MODEL_DIR needs --src and --ref")
    check_same_length(args.src, args.ref)
    translator, options = _load_translator(args)
    hyps = translator.translate(list(iter_lines(args.src)), **options)  # type: ignore[arg-type]
    if args.hyp is not None:
        from nmt.models.store import atomic_write_text

        atomic_write_text(args.hyp, "".join(h + "\n" for h in hyps))
    print(score(hyps, list(iter_lines(args.ref)), tokenized_bleu=args.tokenized_bleu).report())
    print(_reference_loss(translator, args, max_tokens=int(options["max_tokens"])).report())


def _reference_loss(
    translator: Translator, args: argparse.Namespace, *, max_tokens: int
) -> ReferenceLoss:
    """The model's perplexity of --ref given --src (pairs longer than the model takes left out)."""
    import torch

    from nmt.data.dataset import encode_parallel
    from nmt.evaluation.perplexity import reference_loss

    max_positions = translator.max_positions
    pairs = encode_parallel(
        translator.tokenizer,
        args.src,
        args.ref,
        max_len=None if max_positions is None else max_positions - 1,
    )
    model = cast(torch.nn.Module, translator.model)  # build_model's models are torch modules
    return reference_loss(model, pairs, max_tokens=max_tokens, device=torch.device(args.device))


def _add_decoding_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("search (defaults: the model's config.decoding)")
    group.add_argument("--beam-size", type=int, help="beam size; 1 is greedy (paper: 4)")
    group.add_argument("--length-penalty", type=float, help="α of ((5 + |Y|) / 6)^α (paper: 0.6)")
    group.add_argument("--max-len-a", type=float, help="output length limit a·|X| + b: a")
    group.add_argument("--max-len-b", type=int, help="output length limit a·|X| + b: b")
    group.add_argument("--max-tokens", type=int, help="source tokens per translation batch")
    parser.add_argument("--device", default="cpu", help="cpu or cuda (default: cpu)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="nmt", description=__doc__.splitlines()[0] if __doc__ else ""
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    verbs = parser.add_subparsers(dest="verb", required=True, metavar="VERB")

    data = verbs.add_parser("data", help="build a parallel corpus")
    data_verbs = data.add_subparsers(dest="data_verb", required=True, metavar="ACTION")
    fetch = data_verbs.add_parser("fetch", help="build a corpus from Debian packages")
    fetch.add_argument("name", help="corpus recipe, e.g. de-en")
    fetch.add_argument("--dir", type=Path, required=True, help="output folder")
    fetch.add_argument("--cache-dir", type=Path, help="where downloaded packages are kept")
    fetch.add_argument("--with-gimp", action="store_true", help="add the GIMP manual (~100 MB)")
    fetch.set_defaults(func=cmd_data_fetch)

    train = verbs.add_parser(
        "train",
        help="train (or resume) a model",
        allow_abbrev=False,
        description="Train from a YAML config; override any key with --section.key=value.",
    )
    train.add_argument("config", type=Path)
    train.add_argument(
        "--dry-run", action="store_true", help="validate, build, summarise; no training"
    )
    train.set_defaults(func=cmd_train)

    average = verbs.add_parser("average", help="average the last N checkpoints of a run")
    average.add_argument("run_dir", type=Path)
    average.add_argument("--last", type=int, default=5, help="how many checkpoints (default 5)")
    average.add_argument(
        "-o", "--output", type=Path, required=True, help="model directory to write"
    )
    average.set_defaults(func=cmd_average)

    translate = verbs.add_parser("translate", help="translate stdin or a file")
    translate.add_argument(
        "model_dir", type=Path, help="a model directory (or a run: its best model)"
    )
    translate.add_argument("-i", "--input", type=Path, help="input file (default: stdin)")
    translate.add_argument("-o", "--output", type=Path, help="output file (default: stdout)")
    translate.add_argument("--nbest", type=int, default=1, help="hypotheses per sentence")
    translate.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    _add_decoding_options(translate)
    translate.set_defaults(func=cmd_translate)

    evaluate = verbs.add_parser(
        "evaluate",
        help="sacreBLEU and chrF of a translation (with MODEL_DIR, also its perplexity of --ref)",
    )
    evaluate.add_argument(
        "model_dir", type=Path, nargs="?", help="translate --src first with this model"
    )
    evaluate.add_argument(
        "--hyp", type=Path, help="hypotheses (written there when MODEL_DIR is given)"
    )
    evaluate.add_argument("--ref", type=Path, help="references")
    evaluate.add_argument("--src", type=Path, help="sources to translate (with MODEL_DIR)")
    evaluate.add_argument(
        "--tokenized-bleu", action="store_true", help="also paper-style tokenized BLEU"
    )
    _add_decoding_options(evaluate)
    evaluate.set_defaults(func=cmd_evaluate)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra and args.verb != "train":
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    args.overrides = extra
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
        stream=sys.stderr,
    )
    try:
        args.func(args)
    except NmtError as exc:
        print(f"nmt: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("nmt: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
