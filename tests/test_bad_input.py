"""Every verb against malformed input: each case either succeeds correctly or exits non-zero with
one ``nmt ...: error:`` line (no traceback), and leaves nothing half-written behind.

Verbs run in-process through nmt.cli.main (fast); the file-size-limit cases need a process of
their own (RLIMIT_FSIZE), so they run ``python -m nmt.cli``. The case count is what
docs/reliability.md reports: ``pytest tests/test_bad_input.py --collect-only -q``.
"""

from __future__ import annotations

import io
import re
import resource
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_model

from nmt.cli import main
from nmt.config import config_from_dict
from nmt.data.tokenizer import TOKENIZER_FILE
from nmt.models.build import build_model
from nmt.models.store import save_model_weights

from .conftest import write_toy_corpus
from .training.helpers import write_config

CUDA = torch.cuda.is_available()
OTHER_MODEL = {"num_layers": 2, "d_model": 16, "d_ff": 32, "num_heads": 2}


@dataclass
class Outcome:
    status: int
    stdout: str
    stderr: str


def run_nmt(
    args: list[str], capsys: pytest.CaptureFixture[str], stdin: bytes | None = None
) -> Outcome:
    """``nmt ARGS`` in this process; stdin, if given, as raw bytes (like a pipe)."""
    old_stdin = sys.stdin
    if stdin is not None:
        sys.stdin = io.TextIOWrapper(io.BytesIO(stdin), encoding="utf-8")
    try:
        status = main(args)
    except SystemExit as exc:  # argparse's usage errors
        status = int(exc.code or 0)
    finally:
        sys.stdin = old_stdin
    out, err = capsys.readouterr()
    return Outcome(status, out, err)


def assert_refused(outcome: Outcome, match: str) -> None:
    assert outcome.status != 0, outcome
    assert "Traceback" not in outcome.stderr, outcome.stderr
    errors = [line for line in outcome.stderr.splitlines() if "error:" in line]
    assert len(errors) == 1, outcome.stderr
    [line] = errors
    assert line.startswith("nmt"), line
    # A config's problems are listed on the lines after it.
    assert re.search(match, outcome.stderr, re.IGNORECASE), (match, outcome.stderr)


def assert_nothing_half_written(folder: Path) -> None:
    leftovers = [p for p in folder.rglob(".*") if p.name not in (".", "..")]
    assert not leftovers, leftovers


# --- shared material: a tiny trained run, its model directory, a corpus --------------------------


@pytest.fixture(scope="module")
def material(toy_corpus: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("bad")
    config = write_config(
        folder / "c.yaml",
        toy_corpus,
        folder / "run",
        training={"max_steps": 4, "save_every": 2},
        decoding={"beam_size": 2, "max_len_b": 4},
    )
    assert main(["train", str(config)]) == 0
    assert main(["average", str(folder / "run"), "--last", "2", "-o", str(folder / "model")]) == 0
    return {"config": config, "run": folder / "run", "model": folder / "model"}


def made_file(tmp_path: Path, kind: str) -> Path:
    """An input file of a malformed (or merely unusual) kind."""
    path = tmp_path / f"{kind}.txt"
    plain = b"the big red house sees the small cat\nthe red dog eats a green tree\n"
    contents = {
        "plain": plain,
        "empty": b"",
        "binary": bytes(range(256)) * 4,
        "crlf": plain.replace(b"\n", b"\r\n"),
        "bom": b"\xef\xbb\xbf" + plain,
        "nul": plain.replace(b"red", b"r\x00ed"),
        "one-megabyte-line": b"the big red house " * 58255 + b"\n",
    }
    if kind == "directory":
        path.mkdir()
    elif kind != "missing":
        path.write_bytes(contents[kind])
    return path


# --- translate: inputs --------------------------------------------------------------------------

TRANSLATE_INPUTS = [
    ("empty", 0, None),
    ("binary", None, "binary.txt:1: a NUL byte: a binary file"),
    ("crlf", 2, None),
    ("bom", 2, None),
    ("nul", None, "nul.txt:1: a NUL byte: a binary file"),
    ("one-megabyte-line", None, "a paragraph of 1,048,590 characters, more than the limit"),
    ("directory", None, "directory"),
    ("missing", None, "No such file"),
]


@pytest.mark.parametrize(("kind", "lines", "error"), TRANSLATE_INPUTS)
def test_translate_input_file(
    material: dict[str, Path],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    kind: str,
    lines: int | None,
    error: str | None,
) -> None:
    source, out = made_file(tmp_path, kind), tmp_path / "out" / "hyp.txt"
    out.parent.mkdir()
    outcome = run_nmt(
        ["translate", str(material["model"]), "-i", str(source), "-o", str(out), "-q"], capsys
    )
    assert_nothing_half_written(tmp_path)
    if error is not None:
        assert_refused(outcome, error)
        assert not out.exists()
        return
    assert outcome.status == 0, outcome.stderr
    text = out.read_text(encoding="utf-8")
    assert len(text.splitlines()) == lines and "\r" not in text and "\ufeff" not in text


# --- translate: documents -----------------------------------------------------------------------

SRT_BROKEN_TIMING = (
    b"1\n00:00:01,000 --> 00:00:02,000\nHello\n\n2\n00:00:0x,000 --> 00:00:04,000\nWorld\n\n"
)
DOCUMENTS = [
    (
        "bad.html",
        b"<html><body><p>one\n<b>two</i></p></body></html>",
        [],
        "bad.html:2: not well-formed HTML",
    ),
    ("bad.xml", b"<doc>\n<p>one</q>\n</doc>", [], "bad.xml:2: not well-formed XML"),
    ("bad.po", b'msgid "a"\nmsgstr "b"\nmsgfoo "x"\n', [], "bad.po:3: not a valid PO file"),
    ("bad.srt", SRT_BROKEN_TIMING, [], "bad.srt:6: not valid SubRip"),
    ("bad.vtt", b"NOT A WEBVTT FILE\n", [], "bad.vtt: not valid WebVTT"),
    ("blob.html", bytes(range(256)), [], "blob.html:1: a NUL byte: a binary file"),
    ("latin1.po", b'msgid "caf\xe9"\nmsgstr ""\n', [], "latin1.po:1: not valid UTF-8"),
    ("page.docx", b"PK\x03\x04\x00\x00", [], "page.docx:1: a NUL byte"),
    ("page.txt", b"the cat\n", ["--format", "docx"], "--format: invalid choice: 'docx'"),
    ("page.html", b"<p>the cat</p>", ["--scores"], "--scores and --alignments read one sentence"),
]


@pytest.mark.parametrize(
    ("name", "content", "options", "error"), DOCUMENTS, ids=[d[0] for d in DOCUMENTS]
)
def test_translate_bad_documents(
    material: dict[str, Path],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    name: str,
    content: bytes,
    options: list[str],
    error: str,
) -> None:
    source, out = tmp_path / name, tmp_path / "out" / f"translated-{name}"
    source.write_bytes(content)
    out.parent.mkdir()
    outcome = run_nmt(
        ["translate", str(material["model"]), "-i", str(source), "-o", str(out), *options], capsys
    )
    assert_refused(outcome, re.escape(error))
    assert not out.exists()
    assert_nothing_half_written(tmp_path)


@pytest.mark.parametrize("suffix", [".txt", ".html"])
def test_a_50_megabyte_paragraph_is_refused_with_the_limit(
    material: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str], suffix: str
) -> None:
    source, out = tmp_path / f"huge{suffix}", tmp_path / "out" / f"huge{suffix}"
    with source.open("wb") as f:  # 50 MB, one paragraph: no line break
        f.write(b"<p>" if suffix == ".html" else b"")
        for _ in range(50):
            f.write(b"the big red house " * 58_255)
    out.parent.mkdir()
    outcome = run_nmt(
        ["translate", str(material["model"]), "-i", str(source), "-o", str(out)], capsys
    )
    assert_refused(outcome, "more than the limit of")
    assert not out.exists()
    assert_nothing_half_written(tmp_path)


@pytest.mark.parametrize(
    ("stdin", "lines", "error"),
    [
        (b"", 0, None),
        (b"the cat\r\n\r\nthe dog\r\n", 3, None),
        (b"\xff\xfethe cat\n", None, "<stdin>:1: not valid UTF-8"),
        (b"the cat\nthe \xc3\x28 dog\n", None, "<stdin>:2: not valid UTF-8"),
    ],
    ids=["empty", "crlf", "utf16-bom", "bad-byte-line-2"],
)
def test_translate_stdin(
    material: dict[str, Path],
    capsys: pytest.CaptureFixture[str],
    stdin: bytes,
    lines: int | None,
    error: str | None,
) -> None:
    outcome = run_nmt(["translate", str(material["model"])], capsys, stdin=stdin)
    if error is not None:
        assert_refused(outcome, error)
        return
    assert outcome.status == 0, outcome.stderr
    assert len(outcome.stdout.splitlines()) == lines


def test_a_bom_changes_no_translation(
    material: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    outputs = []
    for kind in ("plain", "bom"):
        source = made_file(tmp_path, kind)
        args = ["translate", str(material["model"]), "-i", str(source), "-q"]
        outcome = run_nmt(args, capsys)
        assert outcome.status == 0, outcome.stderr
        outputs.append(outcome.stdout)
    assert outputs[0] == outputs[1]


# --- translate: outputs and options --------------------------------------------------------------


@pytest.mark.parametrize(
    ("output", "error"),
    [
        ("missing-folder/hyp.txt", "cannot write"),
        ("a-file/hyp.txt", "cannot write"),
        ("a-folder", "directory"),
        ("/proc/nmt-hyp.txt", "cannot write"),
    ],
)
def test_translate_unwritable_output(
    material: dict[str, Path],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    output: str,
    error: str,
) -> None:
    (tmp_path / "a-file").write_text("not a folder")
    (tmp_path / "a-folder").mkdir()
    source = made_file(tmp_path, "plain")
    args = ["translate", str(material["model"]), "-i", str(source), "-o", str(tmp_path / output)]
    assert_refused(run_nmt([*args, "-q"], capsys), error)
    assert_nothing_half_written(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a-file", "a-folder", "plain.txt"]


@pytest.mark.parametrize(
    ("options", "error"),
    [
        (["--beam-size", "0"], "beam.size"),
        (["--beam-size", "-2"], "beam.size"),
        (["--beam-size", "four"], "invalid int value"),
        (["--max-len-a", "-1"], "max.len.a"),
        (["--max-len-b", "-5"], "max.len.b"),
        (["--max-tokens", "0"], "max.tokens"),
        (["--length-penalty", "-0.5"], "length.penalty"),
        (["--device", "cuda"], None if CUDA else "no CUDA device"),
        (["--device", "gpu7"], "not a device"),
        (["--shortlist"], "no shortlist; build it with: nmt shortlist"),
    ],
    ids=lambda v: " ".join(v) if isinstance(v, list) else str(v),
)
def test_translate_options(
    material: dict[str, Path],
    capsys: pytest.CaptureFixture[str],
    options: list[str],
    error: str | None,
) -> None:
    outcome = run_nmt(["translate", str(material["model"]), *options], capsys, stdin=b"the cat\n")
    if error is None:
        assert outcome.status == 0 and len(outcome.stdout.splitlines()) == 1, outcome.stderr
    else:
        assert_refused(outcome, error)


# --- translate / evaluate / average: damaged model directories ------------------------------------


def damage(model: Path, kind: str, material: dict[str, Path], tmp_path: Path) -> None:
    """Damage a copy of a model directory in one way."""
    weights, config = model / "model.safetensors", model / "config.yaml"
    match kind:
        case "truncated-weights":
            weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 3])
        case "empty-weights":
            weights.write_bytes(b"")
        case "pickle-as-safetensors":
            torch.save({"w": torch.zeros(3)}, weights)
        case "weights-of-another-shape":
            other = config_from_dict({"model": OTHER_MODEL}, source="test").model
            save_model_weights(build_model(other, 60), weights, config=other)
        case "another-shape-unrecorded":  # weights from before the architecture record
            other = config_from_dict({"model": OTHER_MODEL}, source="test").model
            save_model(build_model(other, 60), str(weights))
        case "heads-edited":
            config.write_text(config.read_text().replace("num_heads: 4", "num_heads: 2"))
        case "depth-edited":
            config.write_text(config.read_text().replace("num_layers: 2", "num_layers: 1"))
        case "config-missing":
            config.unlink()
        case "config-binary":
            config.write_bytes(bytes(range(256)))
        case "config-not-a-mapping":
            config.write_text("- just\n- a list\n")
        case "config-unknown-key":
            config.write_text(config.read_text().replace("d_ff: 64", "d_ff: 64\n  d_fff: 1"))
        case "tokenizer-missing":
            (model / TOKENIZER_FILE).unlink()
        case "tokenizer-garbage":
            (model / TOKENIZER_FILE).write_bytes(b"\x00garbage" * 100)
        case "weights-missing":
            weights.unlink()
        case "weights-a-directory":
            weights.unlink()
            weights.mkdir()


DAMAGES = [
    ("truncated-weights", "corrupt"),
    ("empty-weights", "corrupt"),
    ("pickle-as-safetensors", "corrupt"),
    ("weights-of-another-shape", "another architecture"),
    ("another-shape-unrecorded", "do not fit"),
    ("heads-edited", r"num_heads 2 \(trained with 4\)"),
    ("depth-edited", r"num_layers 1 \(trained with 2\)"),
    ("config-missing", "cannot read config"),
    ("config-binary", "cannot read config"),
    ("config-not-a-mapping", "mapping"),
    ("config-unknown-key", "d_fff"),
    ("tokenizer-missing", "tokenizer"),
    ("tokenizer-garbage", "SentencePiece"),
    ("weights-missing", "not a model directory"),
    ("weights-a-directory", "not a model directory"),
]


@pytest.mark.parametrize(("kind", "error"), DAMAGES)
@pytest.mark.parametrize("verb", ["translate", "evaluate"])
def test_damaged_model_directory(
    material: dict[str, Path],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    verb: str,
    kind: str,
    error: str,
) -> None:
    model = tmp_path / "model"
    shutil.copytree(material["model"], model)
    damage(model, kind, material, tmp_path)
    capsys.readouterr()
    source = made_file(tmp_path, "plain")
    if verb == "translate":
        args = ["translate", str(model), "-i", str(source), "-o", str(tmp_path / "hyp"), "-q"]
    else:
        args = ["evaluate", str(model), "--src", str(source), "--ref", str(source)]
        args += ["--hyp", str(tmp_path / "hyp")]
    assert_refused(run_nmt(args, capsys), error)
    assert not (tmp_path / "hyp").exists()
    assert_nothing_half_written(tmp_path)


@pytest.mark.parametrize(
    ("kind", "error"),
    [(k, e) for k, e in DAMAGES if k in ("truncated-weights", "pickle-as-safetensors")]
    + [("heads-edited", "another architecture")],
)
def test_average_of_a_damaged_checkpoint(
    material: dict[str, Path],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    kind: str,
    error: str,
) -> None:
    run = tmp_path / "run"
    shutil.copytree(material["run"], run)
    damage(run / "checkpoints" / "step-00000004", kind, material, tmp_path)
    capsys.readouterr()
    outcome = run_nmt(["average", str(run), "--last", "2", "-o", str(tmp_path / "avg")], capsys)
    assert_refused(outcome, error)
    assert not (tmp_path / "avg").exists()
    assert_nothing_half_written(tmp_path)


# --- export and import ----------------------------------------------------------------------------

EXPORT_DAMAGES = ["truncated-weights", "pickle-as-safetensors", "heads-edited", "tokenizer-missing"]


@pytest.mark.parametrize("kind", EXPORT_DAMAGES)
@pytest.mark.parametrize("to", ["ctranslate2", "marian"])
def test_export_of_a_damaged_model_directory(
    material: dict[str, Path],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    to: str,
    kind: str,
) -> None:
    model = tmp_path / "model"
    shutil.copytree(material["model"], model)
    damage(model, kind, material, tmp_path)
    capsys.readouterr()
    out = tmp_path / "exported"
    outcome = run_nmt(["export", str(model), "--to", to, "-o", str(out)], capsys)
    assert_refused(outcome, dict(DAMAGES)[kind])
    assert not out.exists()
    assert_nothing_half_written(tmp_path)


@pytest.mark.parametrize("to", ["ctranslate2", "marian"])
@pytest.mark.parametrize(
    ("output", "error"), [("a-file", "a-file"), ("a-file/out", "a-file"), ("/proc/nmt-x", "nmt-x")]
)
def test_export_to_an_unwritable_place(
    material: dict[str, Path],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    to: str,
    output: str,
    error: str,
) -> None:
    (tmp_path / "a-file").write_text("keep me")
    out = tmp_path / output
    outcome = run_nmt(["export", str(material["model"]), "--to", to, "-o", str(out)], capsys)
    assert_refused(outcome, error)
    assert (tmp_path / "a-file").read_text() == "keep me"
    assert_nothing_half_written(tmp_path)


@pytest.mark.parametrize("source", ["missing", "empty-folder", "a-file", "garbage-config"])
def test_import_marian_of_no_marian_model(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], source: str
) -> None:
    folder = tmp_path / source
    if source == "empty-folder":
        folder.mkdir()
    elif source == "a-file":
        folder.write_text("x")
    elif source == "garbage-config":
        folder.mkdir()
        (folder / "config.json").write_bytes(bytes(range(256)))
    outcome = run_nmt(["import", "marian", str(folder), "-o", str(tmp_path / "out")], capsys)
    assert_refused(outcome, source if source != "garbage-config" else "config.json")
    assert not (tmp_path / "out").exists()
    assert_nothing_half_written(tmp_path)


# --- average: arguments and outputs ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "error"),
    [
        (["--last", "0"], "at least 1"),
        (["--last", "-3"], "at least 1"),
        (["--last", "x"], "invalid int value"),
        (["--last", "10"], None),  # more than the run kept: all of them, with a warning
        (["-o", "{tmp}/a-file"], "not a model directory"),
        (["-o", "{tmp}/a-folder"], "not a model directory"),
        (["-o", "{tmp}/a-file/avg"], "cannot write"),
        (["-o", "/proc/nmt-avg"], "cannot write"),
    ],
    ids=lambda v: " ".join(v) if isinstance(v, list) else str(v),
)
def test_average_arguments(
    material: dict[str, Path],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    args: list[str],
    error: str | None,
) -> None:
    (tmp_path / "a-file").write_text("keep me")
    (tmp_path / "a-folder").mkdir()
    (tmp_path / "a-folder" / "notes.txt").write_text("keep me")
    args = [a.replace("{tmp}", str(tmp_path)) for a in args]
    if "-o" not in args:
        args += ["-o", str(tmp_path / "avg")]
    outcome = run_nmt(["average", str(material["run"]), *args], capsys)
    assert_nothing_half_written(tmp_path)
    # Whatever it refused to replace is untouched.
    assert (tmp_path / "a-file").read_text() == "keep me"
    assert (tmp_path / "a-folder" / "notes.txt").read_text() == "keep me"
    if error is not None:
        assert_refused(outcome, error)
        return
    assert outcome.status == 0, outcome.stderr
    assert "averaged 2 checkpoints" in outcome.stdout
    assert (tmp_path / "avg" / "model.safetensors").is_file()


@pytest.mark.parametrize(
    ("run", "error"),
    [("missing", "no checkpoints"), ("empty", "no checkpoints"), ("a-file", "no checkpoints")],
)
def test_average_of_no_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], run: str, error: str
) -> None:
    (tmp_path / "empty").mkdir()
    (tmp_path / "a-file").write_text("x")
    outcome = run_nmt(["average", str(tmp_path / run), "-o", str(tmp_path / "avg")], capsys)
    assert_refused(outcome, error)
    assert not (tmp_path / "avg").exists()


# --- evaluate: hypothesis and reference files ----------------------------------------------------


@pytest.mark.parametrize(
    ("hyp_kind", "ref_kind", "bleu", "error"),
    [
        ("plain", "plain", 100.0, None),
        ("crlf", "plain", 100.0, None),  # the same sentences with Windows line ends
        ("bom", "plain", 100.0, None),  # the same after a byte-order mark
        ("nul", "plain", None, None),  # scored as it is: not the same text
        ("binary", "binary", None, "not valid UTF-8"),
        ("plain", "binary", None, "differ in length"),
        ("directory", "plain", None, "directory"),
        ("missing", "plain", None, "No such file"),
        ("empty", "empty", None, "empty|nothing to score|no lines"),
        ("empty", "plain", None, "differ in length"),
    ],
)
def test_evaluate_files(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    hyp_kind: str,
    ref_kind: str,
    bleu: float | None,
    error: str | None,
) -> None:
    (tmp_path / "h").mkdir()
    (tmp_path / "r").mkdir()
    hyp, ref = made_file(tmp_path / "h", hyp_kind), made_file(tmp_path / "r", ref_kind)
    outcome = run_nmt(["evaluate", "--hyp", str(hyp), "--ref", str(ref)], capsys)
    if error is not None:
        assert_refused(outcome, error)
        return
    assert outcome.status == 0, outcome.stderr
    [line] = [line for line in outcome.stdout.splitlines() if "BLEU" in line][:1]
    if bleu is not None:
        assert f"BLEU {bleu:.2f} " in line, line
    else:
        assert float(line.split()[2]) < 100.0, line


# --- train: configs, options and data, all checked before any work ------------------------------


def corpus_with(tmp_path: Path, split_file: str, content: bytes | None) -> Path:
    """A small valid corpus with one file replaced (None: removed; b"/": a directory)."""
    corpus = write_toy_corpus(tmp_path / "corpus", sizes={"train": 300, "dev": 20, "test": 20})
    target = corpus / split_file
    target.unlink()
    if content == b"/":
        target.mkdir()
    elif content is not None:
        target.write_bytes(content)
    return corpus


TRAIN_DATA = [
    ("dev.en", None, "dev file not found"),
    ("train.de", None, "train file not found"),
    ("dev.en", b"/", "a directory"),
    ("train.en", b"\xff\xfe" + b"x\n" * 300, "train.en:1: not valid UTF-8"),
    ("dev.de", b"eins\n" * 19 + b"\xc3\x28\n", "dev.de:20: not valid UTF-8"),
    ("train.en", b"a b\n" * 299, "differ in length"),
    ("test.de", b"a\n" * 3, "differ in length"),  # the demo reads it at the end: check it first
    ("train.en", b"", "differ in length"),
    ("dev.en", b"\n" * 20, "no sentence pair"),
]


@pytest.mark.parametrize(("split_file", "content", "error"), TRAIN_DATA)
def test_train_refuses_bad_data_before_any_work(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    split_file: str,
    content: bytes | None,
    error: str,
) -> None:
    corpus = corpus_with(tmp_path, split_file, content)
    config = write_config(tmp_path / "c.yaml", corpus, tmp_path / "run")
    assert_refused(run_nmt(["train", str(config)], capsys), error)
    # Checked before the tokenizer is trained: no work done, nothing to clean up.
    assert not (tmp_path / "run" / TOKENIZER_FILE).exists()
    assert_nothing_half_written(tmp_path)


@pytest.mark.parametrize(
    ("split_file", "content"),
    [
        ("train.en", "crlf"),
        ("train.en", "bom"),
        ("train.de", "nul"),
        ("train.en", "one-megabyte-line"),
    ],
)
def test_train_takes_unusual_but_valid_text(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], split_file: str, content: str
) -> None:
    corpus = write_toy_corpus(tmp_path / "corpus", sizes={"train": 300, "dev": 20, "test": 20})
    path = corpus / split_file
    lines = path.read_bytes().splitlines(keepends=True)
    special = made_file(tmp_path, content).read_bytes()
    if content == "crlf":
        path.write_bytes(b"".join(line.replace(b"\n", b"\r\n") for line in lines))
    elif content == "bom":
        path.write_bytes(b"\xef\xbb\xbf" + b"".join(lines))
    else:  # replace the first line by the special one
        path.write_bytes(special.splitlines(keepends=True)[0] + b"".join(lines[1:]))
    config = write_config(tmp_path / "c.yaml", corpus, tmp_path / "run", training={"max_steps": 2})
    outcome = run_nmt(["train", str(config)], capsys)
    assert outcome.status == 0, outcome.stderr
    assert (tmp_path / "run" / "checkpoints" / "step-00000002").is_dir()


@pytest.mark.parametrize(
    ("config_text", "overrides", "error"),
    [
        (b"", [], "train file not found"),  # all defaults: data/de-en is not there
        (bytes(range(256)), [], "cannot read config"),
        (b"data: [1, 2\n", [], "not valid YAML"),
        (b"- a\n- b\n", [], "mapping"),
        (None, ["--data.max_len=2000"], "max_positions"),
        (None, ["--data.max_len=-4"], "data.max_len"),
        (None, ["--training.max_steps=-1"], "training.max_steps"),
        (None, ["--training.max_tokens=0"], "training.max_tokens"),
        (None, ["--training.max_minutes=-5"], "training.max_minutes"),
        (None, ["--model.num_heads=3"], "divisible"),
        (None, ["--training.device=cuda"], None if CUDA else "no CUDA device"),
        (None, ["--training.lerning_rate=3"], "lerning_rate"),
        (None, ["--training.max_steps"], "must look like"),
    ],
    ids=lambda v: v.decode("latin-1")[:12] if isinstance(v, bytes) else str(v),
)
def test_train_configs_and_overrides(
    toy_corpus: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    config_text: bytes | None,
    overrides: list[str],
    error: str | None,
) -> None:
    monkeypatch.chdir(tmp_path)  # a config's default paths must point nowhere real
    config = tmp_path / "c.yaml"
    if config_text is None:
        write_config(config, toy_corpus, tmp_path / "run", training={"max_steps": 1})
    else:
        config.write_bytes(config_text)
    outcome = run_nmt(["train", str(config), *overrides], capsys)
    if error is None:
        assert outcome.status == 0, outcome.stderr
        return
    assert_refused(outcome, error)
    assert not (tmp_path / "run" / "checkpoints").exists()


@pytest.mark.parametrize("kind", ["crlf", "bom"])
def test_train_reads_crlf_and_bom_configs(
    toy_corpus: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], kind: str
) -> None:
    config = write_config(tmp_path / "c.yaml", toy_corpus, tmp_path / "run")
    data = config.read_bytes()
    config.write_bytes(data.replace(b"\n", b"\r\n") if kind == "crlf" else b"\xef\xbb\xbf" + data)
    outcome = run_nmt(["train", str(config), "--dry-run"], capsys)
    assert outcome.status == 0, outcome.stderr
    assert "config is valid" in outcome.stdout


@pytest.mark.parametrize(
    "where", ["run-dir-is-a-file", "run-dir-under-a-file", "run-dir-unwritable"]
)
def test_train_unwritable_run_directory(
    toy_corpus: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], where: str
) -> None:
    (tmp_path / "a-file").write_text("x")
    run = {
        "run-dir-is-a-file": tmp_path / "a-file",
        "run-dir-under-a-file": tmp_path / "a-file" / "run",
        "run-dir-unwritable": Path("/proc/nmt-run"),
    }[where]
    config = write_config(tmp_path / "c.yaml", toy_corpus, run)
    outcome = run_nmt(["train", str(config)], capsys)
    assert_refused(outcome, str(run) if where != "run-dir-unwritable" else "nmt-run")
    assert (tmp_path / "a-file").read_text() == "x"


def test_a_tokenizer_trained_on_other_data_is_detected_on_resume(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    corpus = write_toy_corpus(tmp_path / "corpus", sizes={"train": 300, "dev": 20, "test": 20})
    config = write_config(tmp_path / "c.yaml", corpus, tmp_path / "run", training={"max_steps": 1})
    assert run_nmt(["train", str(config)], capsys).status == 0
    write_toy_corpus(corpus, sizes={"train": 300}, seed=7)  # the corpus fetched anew, other text
    outcome = run_nmt(["train", str(config), "--training.max_steps=2"], capsys)
    assert_refused(outcome, r"other data than the config.s \(train.de, train.en changed\)")
    assert not (tmp_path / "run" / "checkpoints" / "step-00000002").exists()


# --- data fetch: arguments (checked before any download) -----------------------------------------


@pytest.mark.parametrize(
    ("args", "error"),
    [
        (["xx-yy", "--dir", "{tmp}/d"], "unknown corpus"),
        (["de-en", "--dir", "{tmp}/a-file"], "not a folder"),
        (["de-en", "--dir", "{tmp}/a-file/d"], "is a file"),
        (["de-en"], "--dir"),
    ],
    ids=lambda v: " ".join(v) if isinstance(v, list) else str(v),
)
def test_data_fetch_arguments(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], error: str
) -> None:
    (tmp_path / "a-file").write_text("x")
    args = [a.replace("{tmp}", str(tmp_path)) for a in args]
    assert_refused(run_nmt(["data", "fetch", *args], capsys), error)
    assert not (tmp_path / "d").exists()


# --- a full disk: writes that fail under a file-size limit (RLIMIT_FSIZE), in a real process ----


def limited(max_bytes: int) -> Callable[[], None]:
    def preexec() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (max_bytes, max_bytes))

    return preexec


def nmt_process(args: list[str], *, max_bytes: int | None = None) -> Outcome:
    result = subprocess.run(
        [sys.executable, "-m", "nmt.cli", *args],
        capture_output=True,
        text=True,
        preexec_fn=limited(max_bytes) if max_bytes is not None else None,
    )
    return Outcome(result.returncode, result.stdout, result.stderr)


def test_a_checkpoint_save_that_hits_the_size_limit_fails_cleanly_and_resumes(
    material: dict[str, Path], toy_corpus: Path, tmp_path: Path
) -> None:
    run = tmp_path / "run"
    shutil.copytree(material["run"], run)
    config = write_config(
        tmp_path / "c.yaml",
        toy_corpus,
        run,
        training={"max_steps": 6, "save_every": 2},
        decoding={"beam_size": 2, "max_len_b": 4},
    )
    before = {p.name: p.read_bytes() for p in (run / "checkpoints" / "step-00000004").iterdir()}
    outcome = nmt_process(["train", str(config)], max_bytes=100_000)  # < a checkpoint's files
    assert_refused(outcome, "cannot write the checkpoint")
    assert "older checkpoints are intact" in outcome.stderr
    after = {p.name: p.read_bytes() for p in (run / "checkpoints" / "step-00000004").iterdir()}
    assert after == before
    assert_nothing_half_written(run)
    # Room again: the run resumes from its newest checkpoint and finishes.
    assert nmt_process(["train", str(config)]).status == 0
    assert (run / "checkpoints" / "step-00000006" / "model.safetensors").is_file()


@pytest.mark.parametrize("verb", ["translate", "average", "evaluate", "export"])
def test_outputs_that_hit_the_size_limit_fail_cleanly(
    material: dict[str, Path], tmp_path: Path, verb: str
) -> None:
    out = tmp_path / "out"
    source = tmp_path / "src.txt"
    source.write_text("the big red house sees the small cat\n" * 300)
    args = {
        "translate": ["translate", str(material["model"]), "-i", str(source), "-o", str(out), "-q"],
        "average": ["average", str(material["run"]), "-o", str(out)],
        "export": ["export", str(material["model"]), "--to", "ctranslate2", "-o", str(out)],
        "evaluate": [
            *("evaluate", str(material["model"]), "--src", str(source), "--ref", str(source)),
            *("--hyp", str(out)),
        ],
    }[verb]
    outcome = nmt_process(args, max_bytes=200)  # less than 300 lines of output
    assert_refused(outcome, "too large")
    assert not out.exists()
    assert_nothing_half_written(tmp_path)


@pytest.mark.parametrize(
    ("options", "error"),
    [
        (["--per-source", "0"], "--per-source: must be at least 1"),
        (["--corpus", "/nonexistent"], r"train\.en: no such file"),
    ],
    ids=lambda v: " ".join(v) if isinstance(v, list) else str(v),
)
def test_shortlist_options(
    material: dict[str, Path],
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    options: list[str],
    error: str,
) -> None:
    model = tmp_path / "model"
    shutil.copytree(material["model"], model)
    assert_refused(run_nmt(["shortlist", str(model), *options], capsys), error)
    assert not (model / "shortlist.safetensors").exists()
