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
    from nmt.config import DecodingConfig
    from nmt.decoding.translator import Translator
    from nmt.evaluation.perplexity import ReferenceLoss

log = logging.getLogger("nmt")

SHORTLIST_HELP = (
    "restrict the output layer to the target pieces likely for each batch's sources, from the "
    "shortlist `nmt shortlist` built beside the model (faster on large vocabularies; "
    "docs/engines.md gives the BLEU it costs)"
)


def cmd_data_fetch(args: argparse.Namespace) -> None:
    from nmt.data.corpus.recipe import fetch_corpus

    report = fetch_corpus(args.name, args.dir, cache_dir=args.cache_dir, with_gimp=args.with_gimp)
    print(report.table())


def cmd_data_prepare(args: argparse.Namespace) -> None:
    from nmt.config import load_config
    from nmt.training.setup import prepare_data

    for split, folder, pairs in prepare_data(load_config(args.config, args.overrides)):
        print(f"{split}: {pairs} pairs encoded in {folder}")


def cmd_train(args: argparse.Namespace) -> None:
    from nmt.config import load_config

    config = load_config(args.config, args.overrides)
    if args.dry_run:
        from nmt.data.tokenizer import TOKENIZER_FILE, Tokenizer
        from nmt.training.train import describe_model

        tokenizer_path = config.training.run_dir / TOKENIZER_FILE
        if args.init_from is not None:
            from nmt.training.setup import fine_tuning_config

            config = fine_tuning_config(config, args.init_from)
        vocab_size = (
            Tokenizer.load(tokenizer_path).vocab_size
            if tokenizer_path.is_file()
            else config.data.vocab_size
        )
        print(describe_model(config, vocab_size))
        print("config is valid; --dry-run: not training")
        return
    from nmt.training.memory import log_allocator
    from nmt.training.train import train

    log_allocator()
    result = train(config, init_from=args.init_from)
    print(
        f"stopped at step {result.step} ({result.stopped_because}); "
        f"checkpoints and best model in {result.run_dir}"
    )


def cmd_average(args: argparse.Namespace) -> None:
    from nmt.training.average import average_checkpoints

    chosen = average_checkpoints(args.run_dir, last=args.last, out_dir=args.output)
    names = f"{chosen[0].name} … {chosen[-1].name}"
    print(f"averaged {len(chosen)} checkpoints ({names}) into {args.output}")


def _decoding_options(args: argparse.Namespace, defaults: DecodingConfig) -> DecodingConfig:
    """The model's config.decoding with the options given on the command line applied."""
    given = {name: getattr(args, name, None) for name in type(defaults).model_fields}
    if (glossary_file := given.get("glossary")) is not None:
        from nmt.decoding.glossary import glossary_option

        given["glossary"] = glossary_option(glossary_file)  # a TSV file's terms
    return defaults.updated(**given)


def _load_translator(args: argparse.Namespace) -> tuple[Translator, DecodingConfig]:
    """The model directory's Translator, and the search options: the command line's, else the
    model's ``decoding`` section."""
    from nmt.decoding.translator import Translator

    translator = Translator.load(
        args.model_dirs,
        engine=args.engine,
        int8=args.int8,
        device=args.device,
        shortlist=args.shortlist,
    )
    return translator, _decoding_options(args, translator.default_options)


def cmd_translate(args: argparse.Namespace) -> None:
    from nmt.text.documents import Job, document_format, translate_document
    from nmt.text.documents.plain import translate_lines
    from nmt.text.translate import model_languages

    format = document_format(args.input, args.format)
    if (args.scores or args.alignments) and format not in ("text", "lines"):
        raise NmtError(
            "--scores and --alignments read one sentence a line: not with --format " + format
        )
    translator, options = _load_translator(args)
    source_language, target_language = model_languages(args.model_dirs[0])
    interactive = (
        args.interactive
        if args.interactive is not None
        else (args.input is None and sys.stdin.isatty())
    )
    job = Job(
        name=str(args.input or "<stdin>"),
        options=options,
        source_language=source_language,
        target_language=target_language,
        progress=args.input is not None and not args.quiet,
    )
    if format in ("text", "lines") and options.nbest > 1:  # n-best lists: one sentence a line
        from nmt.decoding.files import translate_file

        translate_file(
            translator,
            input_path=args.input,
            output_path=args.output,
            options=options,
            progress=job.progress,
            interactive=interactive,
        )
    elif format in ("text", "lines"):
        translate_lines(
            translator,
            input_path=args.input,
            output_path=args.output,
            job=job,
            split_sentences=format == "text",
            scores=args.scores,
            alignments=args.alignments,
            interactive=interactive,
        )
    else:
        report = translate_document(
            translator, input_path=args.input, output_path=args.output, format=format, job=job
        )
        if not args.quiet:
            print(report.line(job.name), file=sys.stderr)


def cmd_score(args: argparse.Namespace) -> None:
    import torch

    from nmt.data.parallel import check_same_length, iter_lines
    from nmt.evaluation.pair_scores import score_pairs
    from nmt.models.store import load_model_dir

    check_same_length(args.src, args.tgt)
    loaded = load_model_dir(args.model_dir, device=args.device)
    pairs = zip(iter_lines(args.src), iter_lines(args.tgt), strict=True)
    for score in score_pairs(
        loaded.model,
        loaded.tokenizer,
        pairs,
        max_positions=loaded.config.model.max_positions,
        device=torch.device(args.device),
    ):
        print(score.line(), flush=True)


def cmd_evaluate(args: argparse.Namespace) -> None:
    from nmt.data.parallel import check_same_length, iter_lines
    from nmt.evaluation.scoring import score, score_files

    if not args.model_dirs:
        if args.hyp is None or args.ref is None:
            raise NmtError("evaluate needs --hyp and --ref (or MODEL_DIR --src S --ref R)")
        print(score_files(args.hyp, args.ref, tokenized_bleu=args.tokenized_bleu).report())
        _print_comparison(args, list(iter_lines(args.hyp)))
        return
    if args.src is None or args.ref is None:
        raise NmtError("evaluate MODEL_DIR needs --src and --ref")
    check_same_length(args.src, args.ref)
    translator, options = _load_translator(args)
    hyps = translator.translate(list(iter_lines(args.src)), options)
    if args.hyp is not None:
        from nmt.durable import atomic_write_text

        atomic_write_text(args.hyp, "".join(h + "\n" for h in hyps))
    print(score(hyps, list(iter_lines(args.ref)), tokenized_bleu=args.tokenized_bleu).report())
    print(_reference_loss(translator, args, max_tokens=options.max_tokens).report())
    _print_comparison(args, hyps)


def _print_comparison(args: argparse.Namespace, hyps: list[str]) -> None:
    """With --compare: sacreBLEU's paired bootstrap of ``hyps`` against that baseline's output."""
    if args.compare is None:
        return
    from nmt.data.parallel import check_same_length, iter_lines
    from nmt.evaluation.scoring import comparison_report, paired_bootstrap

    check_same_length(args.compare, args.ref)
    comparisons = paired_bootstrap(hyps, list(iter_lines(args.compare)), list(iter_lines(args.ref)))
    system = str(args.hyp) if not args.model_dirs else " + ".join(map(str, args.model_dirs))
    print(comparison_report(comparisons, system=system, baseline=str(args.compare)))


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
    if hasattr(translator, "model"):
        model = cast(torch.nn.Module, translator.model)  # build_model's models are torch modules
    else:  # the CTranslate2 engine holds none: the perplexity is the weights', read by nmt
        from nmt.models.store import load_model_dir

        model = load_model_dir(args.model_dirs[0], device=args.device).model
    return reference_loss(model, pairs, max_tokens=max_tokens, device=torch.device(args.device))


def _add_decoding_options(parser: argparse.ArgumentParser) -> None:
    # Each flag sets the config.decoding field of its name (nmt.config.DecodingConfig);
    # optional(...) also takes "none", which takes away a value the model's config sets.
    from nmt.config import optional

    group = parser.add_argument_group("search (defaults: the model's config.decoding)")
    group.add_argument("--beam-size", type=int, help="beam size; 1 is greedy (paper: 4)")
    group.add_argument("--nbest", type=int, help="translations per sentence (n-best lines)")
    group.add_argument("--length-penalty", type=float, help="α of ((5 + |Y|) / 6)^α (paper: 0.6)")
    group.add_argument("--max-len-a", type=float, help="output length limit a·|X| + b: a")
    group.add_argument("--max-len-b", type=int, help="output length limit a·|X| + b: b")
    group.add_argument("--max-tokens", type=int, help="source tokens per translation batch")
    group.add_argument(
        "--stopping",
        choices=["early", "exact"],
        help="early: once the most probable candidate ends (fast); exact: the paper's bound",
    )
    group.add_argument(
        "--patience", type=optional(float), help="early stopping: wait for ⌈p·k⌉ endings"
    )
    group.add_argument(
        "--allow-empty", action=argparse.BooleanOptionalAction, help="allow empty translations"
    )
    group.add_argument(
        "--sampling", action=argparse.BooleanOptionalAction, help="sample instead of searching"
    )
    group.add_argument("--temperature", type=float, help="sampling temperature")
    group.add_argument("--top-k", type=optional(int), help="sample among the k likeliest tokens")
    group.add_argument("--top-p", type=optional(float), help="sample in the nucleus of mass p")
    group.add_argument("--seed", type=optional(int), help="sampling seed (repeatable draws)")
    group.add_argument("--prefix", help="every output starts with this text (target prefix)")
    group.add_argument(
        "--glossary",
        type=Path,
        metavar="TSV",
        help="terms.tsv (source term, tab, target term[, tab, note]): where a sentence holds a "
        "source term, its translation holds the target term (docs/decoding.md)",
    )
    group.add_argument(
        "--no-repeat-ngram-size", type=int, help="never repeat an n-gram of this size (0: off)"
    )
    group.add_argument(
        "--repetition-penalty", type=float, help="penalise tokens already written (> 1; 1: off)"
    )
    group.add_argument("--min-len-a", type=float, help="output at least a·|X| + b tokens: a")
    group.add_argument("--min-len-b", type=int, help="output at least a·|X| + b tokens: b")
    parser.add_argument("--device", default="cpu", help="cpu or cuda (default: cpu)")
    parser.add_argument(
        "--engine",
        choices=["nmt", "ctranslate2"],
        default="nmt",
        help="who searches: nmt, or CTranslate2 on a cached conversion (docs/engines.md)",
    )
    parser.add_argument(
        "--int8", action="store_true", help="int8 linear layers (nmt) or int8 weights (CTranslate2)"
    )
    parser.add_argument("--shortlist", action="store_true", help=SHORTLIST_HELP)


def cmd_serve(args: argparse.Namespace) -> None:
    from pydantic import ValidationError

    from nmt.serve.app import serve
    from nmt.serve.limits import Limits, ServeSettings

    # Flags left out keep the defaults of ServeSettings and Limits.
    def given(names: tuple[str, ...]) -> dict[str, object]:
        return {n: getattr(args, n) for n in names if getattr(args, n) is not None}

    batching = ("batching", "max_wait_ms", "batch_tokens", "workers", "fill_wait")
    limits = ("max_chars", "max_subwords", "max_texts", "max_body_bytes", "max_beam_size")
    try:
        settings = ServeSettings(
            **given((*batching, "model_processes")),
            limits=Limits(**given(limits)),
        )
    except ValidationError as exc:
        flag, error = exc.errors()[0]["loc"][-1], exc.errors()[0]["msg"]
        raise NmtError(f"serve: --{str(flag).replace('_', '-')}: {error}") from None
    if args.threads is not None and args.threads < 1:
        raise NmtError(f"serve: --threads: must be at least 1, not {args.threads}")
    serve(
        args.model_dirs,
        host=args.host,
        port=args.port,
        engine=args.engine,
        device=args.device,
        int8=args.int8,
        shortlist=args.shortlist,
        threads=args.threads,
        settings=settings,
    )


def cmd_experiment_table3(args: argparse.Namespace) -> None:
    from nmt.config import load_config
    from nmt.experiments.table3 import run_table3

    table = run_table3(
        load_config(args.base, args.overrides),
        out_dir=args.out,
        minutes=args.minutes,
        data_dir=args.data,
        rows=args.rows,
        progress=not args.quiet,
    )
    print(table.markdown)
    print(f"table: {table.table_path}, plot: {table.plot_path}")


def _add_experiment_verb(verbs: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    experiment = verbs.add_parser("experiment", help="rerun one of the paper's experiments")
    names = experiment.add_subparsers(dest="experiment", required=True, metavar="NAME")
    table3 = names.add_parser(
        "table3",
        help="Table 3: variations on the Transformer, each trained for the same time",
        allow_abbrev=False,
        description="Train and score the rows of the paper's Table 3 scaled to the base config "
        "(rerun to resume); override base config keys with --section.key=value.",
    )
    table3.add_argument(
        "--base",
        type=Path,
        default=Path("configs/quickstart.yaml"),
        help="the base row's config (default: configs/quickstart.yaml)",
    )
    table3.add_argument("--data", type=Path, help="corpus folder (default: the base's data.dir)")
    table3.add_argument(
        "--out", type=Path, default=Path("runs/table3"), help="default: runs/table3"
    )
    table3.add_argument(
        "--minutes", type=float, default=10.0, help="training time per row (default 10)"
    )
    table3.add_argument(
        "--rows", help="rows or single cells, e.g. A,C2,E (default: all; the base always runs)"
    )
    table3.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    table3.set_defaults(func=cmd_experiment_table3)


def _add_serve_verb(verbs: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    serve = verbs.add_parser(
        "serve",
        help="an HTTP translation service and an attention page",
        description="Serve a model over HTTP: POST /v1/translate, GET /health, GET /v1/model, "
        "the attention page at /, the API's documentation at /docs. SIGTERM or Ctrl-C finish "
        "the requests in flight, then stop.",
    )
    serve.add_argument(
        "model_dirs",
        type=Path,
        nargs="+",
        metavar="MODEL_DIR",
        help="a model directory (or a run: its best model); several: their ensemble "
        "(nmt engine), which averages the members' next-token probabilities",
    )
    serve.add_argument("--host", default="127.0.0.1", help="address (default: 127.0.0.1 only)")
    serve.add_argument("--port", type=int, default=8000, help="port (default: 8000)")
    serve.add_argument("--engine", choices=["nmt", "ctranslate2"], default="nmt")
    serve.add_argument("--int8", action="store_true", help="int8 linear layers (nmt engine)")
    serve.add_argument("--shortlist", action="store_true", help=SHORTLIST_HELP)
    serve.add_argument("--device", default="cpu", help="cpu or cuda (default: cpu)")
    serve.add_argument(
        "--threads",
        type=int,
        help="CPU threads per model thread (default: the cores shared out among --workers)",
    )
    serve.add_argument(
        "--workers",
        type=int,
        help="model threads translating batches side by side (default on a CPU: one per core, "
        "at most 4, single-threaded, which translates more sentences per second than one batch "
        "on all cores; on a GPU: 1)",
    )
    serve.add_argument(
        "--no-model-processes",
        dest="model_processes",
        action="store_const",
        const=False,
        help="keep the searches in the server's process (less memory; by default, on a CPU "
        "with several cores, each model thread searches in a process of its own, sharing the "
        "weights, which is faster)",
    )
    group = serve.add_argument_group("batching")
    group.add_argument(
        "--no-batching",
        dest="batching",
        action="store_const",
        const=False,
        help="one request per model call (to measure what batching gives)",
    )
    group.add_argument(
        "--max-wait-ms", type=float, help="how long a lone request waits for others to join it"
    )
    group.add_argument(
        "--fill-wait",
        type=float,
        help="with several --workers: how long a model thread waits for its share of the "
        "clients, as a fraction of its last batch's time (default 0.3)",
    )
    group.add_argument(
        "--batch-tokens", type=int, help="source tokens per batch (default: decoding.max_tokens)"
    )
    limits = serve.add_argument_group(
        "limits per request, answered with 413 or 422 (defaults: see GET /v1/model)"
    )
    limits.add_argument("--max-chars", type=int, help="characters per text")
    limits.add_argument("--max-subwords", type=int, help="subwords per text")
    limits.add_argument("--max-texts", type=int, help="texts per request")
    limits.add_argument("--max-body-bytes", type=int, help="bytes of a request body")
    limits.add_argument("--max-beam-size", type=int, help="the largest beam size allowed")
    serve.set_defaults(func=cmd_serve)


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
    prepare = data_verbs.add_parser(
        "prepare",
        help="train the run's tokenizer and encode the corpus once (what `nmt train` would)",
        allow_abbrev=False,
    )
    prepare.add_argument("config", type=Path)
    prepare.set_defaults(func=cmd_data_prepare, takes_overrides=True)

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
    train.add_argument(
        "--init-from",
        type=Path,
        metavar="MODEL_DIR",
        help="fine-tune: start from this model directory's weights, tokenizer and model config",
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
        "model_dirs",
        type=Path,
        nargs="+",
        metavar="MODEL_DIR",
        help="a model directory (or a run: its best model); several: their ensemble",
    )
    translate.add_argument("-i", "--input", type=Path, help="input file (default: stdin)")
    translate.add_argument("-o", "--output", type=Path, help="output file (default: stdout)")
    translate.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    translate.add_argument(
        "--interactive",
        action=argparse.BooleanOptionalAction,
        help="translate each line as soon as it is read (default: when stdin is a terminal)",
    )
    translate.add_argument(
        "--format",
        choices=["text", "lines", "html", "xml", "po", "srt", "vtt", "markdown"],
        help="text: each line split into sentences and put back together (default); lines: one "
        "sentence a line (corpora, and always with --nbest above 1); html, xml: markup kept; "
        "po: gettext catalogues; srt, vtt: subtitles; markdown. Default: by -i's extension "
        "(.po .pot .html .htm .xml .srt .vtt .md), else text (docs/documents.md)",
    )
    translate.add_argument(
        "--scores",
        action="store_true",
        help="one sentence a line, followed by ' ||| score ||| ' and each piece's probability "
        "(the EOS's last)",
    )
    translate.add_argument(
        "--alignments",
        action="store_true",
        help="one sentence a line, followed by ' ||| ' and its word alignment in Pharaoh format "
        "(src-tgt, from the model's cross-attention)",
    )
    _add_decoding_options(translate)
    translate.set_defaults(func=cmd_translate)

    score = verbs.add_parser(
        "score",
        help="how likely a model finds given translations (one line per pair, as it goes)",
        description="Print, for each pair of --src and --tgt lines, the target's mean "
        "log-probability per token, its total log-probability and its token count (tab-"
        "separated; nan for a pair longer than the model takes), to filter a corpus.",
    )
    score.add_argument("model_dir", type=Path, metavar="MODEL_DIR")
    score.add_argument("--src", type=Path, required=True, help="sources, one a line")
    score.add_argument("--tgt", type=Path, required=True, help="their translations, one a line")
    score.add_argument("--device", default="cpu", help="cpu or cuda (default: cpu)")
    score.set_defaults(func=cmd_score)

    evaluate = verbs.add_parser(
        "evaluate",
        help="sacreBLEU and chrF of a translation (with MODEL_DIR, also its perplexity of --ref)",
    )
    evaluate.add_argument(
        "model_dirs",
        type=Path,
        nargs="*",
        metavar="MODEL_DIR",
        help="translate --src first with this model (several: their ensemble)",
    )
    evaluate.add_argument(
        "--hyp", type=Path, help="hypotheses (written there when MODEL_DIR is given)"
    )
    evaluate.add_argument("--ref", type=Path, help="references")
    evaluate.add_argument("--src", type=Path, help="sources to translate (with MODEL_DIR)")
    evaluate.add_argument(
        "--tokenized-bleu", action="store_true", help="also paper-style tokenized BLEU"
    )
    evaluate.add_argument(
        "--compare",
        type=Path,
        metavar="OTHER_HYP",
        help="baseline hypotheses: paired bootstrap test of BLEU and chrF against them",
    )
    _add_decoding_options(evaluate)
    evaluate.set_defaults(func=cmd_evaluate)
    _add_serve_verb(verbs)
    _add_experiment_verb(verbs)
    _add_import_verb(verbs)
    _add_export_verb(verbs)
    _add_embeddings_verb(verbs)
    _add_shortlist_verb(verbs)
    return parser


def cmd_import_marian(args: argparse.Namespace) -> None:
    from nmt.interop.marian import import_marian

    import_marian(args.src_dir, args.output)
    print(f"imported {args.src_dir} into the model directory {args.output}")


def _add_import_verb(verbs: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    importer = verbs.add_parser("import", help="bring a model of another toolkit into nmt")
    kinds = importer.add_subparsers(dest="import_kind", required=True, metavar="FORMAT")
    marian = kinds.add_parser(
        "marian",
        help="a Hugging Face Marian (OPUS-MT) folder, safetensors weights (docs/marian.md)",
    )
    marian.add_argument("src_dir", type=Path, help="folder with config.json, model.safetensors…")
    marian.add_argument("-o", "--output", type=Path, required=True, help="model directory to write")
    marian.set_defaults(func=cmd_import_marian)


def cmd_export(args: argparse.Namespace) -> None:
    if args.to == "ctranslate2":
        from nmt.interop.ctranslate2 import export_ctranslate2

        export_ctranslate2(args.model_dir, args.output, quantization=args.quantization)
    elif args.to == "marian":
        from nmt.interop.marian import export_marian

        if args.quantization != "float32":
            raise NmtError("--quantization applies to --to ctranslate2 only")
        export_marian(args.model_dir, args.output)
    print(f"exported {args.model_dir} to the {args.to} model directory {args.output}")


def cmd_embeddings_train(args: argparse.Namespace) -> None:
    from nmt.embeddings.options import EmbeddingOptions
    from nmt.embeddings.train import train_embeddings

    logging.getLogger("gensim").setLevel(logging.WARNING)  # its INFO is a line per 10k sentences
    options = EmbeddingOptions(
        method=args.method,
        dim=args.dim,
        window=args.window,
        min_count=args.min_count,
        epochs=args.epochs,
        lowercase=args.lowercase,
        seed=args.seed,
        workers=args.workers,
    )
    print(train_embeddings(args.corpus, args.output, options))


def _add_embeddings_verb(verbs: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    from nmt.embeddings.options import METHODS, EmbeddingOptions

    defaults = EmbeddingOptions()
    embeddings = verbs.add_parser("embeddings", help="static word vectors (Word2Vec, FastText)")
    actions = embeddings.add_subparsers(dest="embeddings_action", required=True, metavar="ACTION")
    train = actions.add_parser(
        "train",
        help="train vectors with gensim on text files; write word2vec text format "
        "(for model.src_vectors / model.tgt_vectors)",
    )
    train.add_argument("corpus", type=Path, nargs="+", help="text files, one sentence a line")
    train.add_argument("-o", "--output", type=Path, required=True, help="vectors file to write")
    train.add_argument("--method", choices=METHODS, default=defaults.method)
    train.add_argument(
        "--dim", type=int, default=defaults.dim, help="vector size: the model's embedding width"
    )
    train.add_argument("--window", type=int, default=defaults.window, help="context window")
    train.add_argument("--min-count", type=int, default=defaults.min_count, help="rarer words out")
    train.add_argument("--epochs", type=int, default=defaults.epochs)
    train.add_argument("--lowercase", action="store_true", help="lowercase words first")
    train.add_argument("--seed", type=int, default=defaults.seed)
    train.add_argument(
        "--workers", type=int, default=defaults.workers, help="threads (1: repeatable)"
    )
    train.set_defaults(func=cmd_embeddings_train)


def cmd_shortlist(args: argparse.Namespace) -> None:
    from nmt.decoding.shortlist import build_for_model

    for name in ("per_source", "frequent", "max_pairs"):
        value = getattr(args, name)
        if value is not None and value < 1:
            raise NmtError(f"shortlist: --{name.replace('_', '-')}: must be at least 1")
    path = build_for_model(
        args.model_dir,
        args.corpus,
        per_source=args.per_source,
        frequent=args.frequent,
        max_pairs=args.max_pairs,
    )
    print(f"wrote {path}")


def _add_shortlist_verb(verbs: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    shortlist = verbs.add_parser(
        "shortlist",
        help="build a vocabulary shortlist for a model from its training pairs (--shortlist)",
        description="Per source piece, the target pieces that co-occur with it most in the "
        "training pairs (p(target | source)), plus the most frequent target pieces: written "
        "as shortlist.safetensors beside the model, used by translate/serve --shortlist.",
    )
    shortlist.add_argument("model_dir", type=Path, help="a model directory (or a run)")
    shortlist.add_argument(
        "--corpus", type=Path, help="folder with train.SRC and train.TGT (default: data.dir)"
    )
    shortlist.add_argument(
        "--per-source", type=int, default=50, help="target pieces per source piece (default 50)"
    )
    shortlist.add_argument(
        "--frequent", type=int, default=500, help="most frequent target pieces (default 500)"
    )
    shortlist.add_argument("--max-pairs", type=int, help="use the first N training pairs only")
    shortlist.set_defaults(func=cmd_shortlist)


def _add_export_verb(verbs: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    export = verbs.add_parser("export", help="write a model in another toolkit's format")
    export.add_argument("model_dir", type=Path, help="a model directory (or a run: its best model)")
    export.add_argument(
        "--to",
        choices=["ctranslate2", "marian"],
        required=True,
        help="the format: a CTranslate2 model, or a Hugging Face Marian folder (docs/marian.md)",
    )
    export.add_argument("-o", "--output", type=Path, required=True, help="directory to write")
    export.add_argument(
        "--quantization",
        choices=["float32", "int8", "int8_float32", "bfloat16"],
        default="float32",
        help="ctranslate2: the weights' type (default: float32)",
    )
    export.set_defaults(func=cmd_export)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra and args.verb not in ("train", "experiment") and not hasattr(args, "takes_overrides"):
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    args.overrides = extra
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
        stream=sys.stderr,
    )
    from nmt.training.interrupt import Interrupted

    try:
        if argv is None and args.verb == "train" and not args.dry_run:
            from nmt.config import load_config
            from nmt.training.memory import keep_no_mkl_buffers, run_with_mimalloc

            if load_config(args.config, args.overrides).training.precision != "float32":
                keep_no_mkl_buffers()  # before torch is loaded
            run_with_mimalloc()  # the program itself, not a caller's main([...])
        args.func(args)
    except NmtError as exc:
        print(f"nmt: error: {exc}", file=sys.stderr)
        return 1
    except Interrupted as exc:  # training saved its last update first
        print(f"nmt: {exc}", file=sys.stderr)
        return exc.exit_status
    except KeyboardInterrupt:
        print("nmt: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0
    except OSError as exc:  # the machine's refusal (a full disk, a size limit, a permission)
        print(f"nmt: error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
