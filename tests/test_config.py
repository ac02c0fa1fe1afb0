from pathlib import Path

import pytest

from nmt.config import RNNConfig, TransformerConfig, load_config
from nmt.errors import NmtError

CONFIGS = sorted((Path(__file__).parent.parent / "configs").glob("*.yaml"))


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_every_shipped_config_loads(path: Path) -> None:
    config = load_config(path)
    assert config.training.run_dir.name  # each names its run directory


def test_shipped_configs_exist() -> None:
    names = {p.name for p in CONFIGS}
    assert {"quickstart.yaml", "transformer-base.yaml", "transformer-big.yaml"} <= names


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "c.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_unknown_key_fails_with_its_full_path(tmp_path: Path) -> None:
    path = write(tmp_path, "training:\n  schedule:\n    warmup_stepz: 10\n")
    with pytest.raises(NmtError, match=r"training\.schedule\.warmup_stepz"):
        load_config(path)


def test_unknown_model_key_fails_with_its_path(tmp_path: Path) -> None:
    path = write(tmp_path, "model:\n  arch: transformer\n  d_modle: 10\n")
    with pytest.raises(NmtError, match=r"model\.d_modle"):
        load_config(path)


def test_wrong_type_fails_with_its_path(tmp_path: Path) -> None:
    path = write(tmp_path, "training:\n  max_tokens: lots\n")
    with pytest.raises(NmtError, match=r"training\.max_tokens"):
        load_config(path)


def test_bad_yaml_names_the_file(tmp_path: Path) -> None:
    path = write(tmp_path, "training: [unclosed\n")
    with pytest.raises(NmtError, match=str(path)):
        load_config(path)


def test_overrides_apply_with_yaml_values(tmp_path: Path) -> None:
    path = write(tmp_path, "training:\n  max_steps: 10\n")
    config = load_config(path, ["--training.max_steps=99", "--model.dropout=0.3"])
    assert config.training.max_steps == 99
    assert isinstance(config.model, TransformerConfig)
    assert config.model.dropout == 0.3


def test_override_of_unknown_key_fails(tmp_path: Path) -> None:
    path = write(tmp_path, "{}\n")
    with pytest.raises(NmtError, match=r"training\.max_stepz"):
        load_config(path, ["--training.max_stepz=1"])


def test_presets_are_the_papers_table() -> None:
    base = TransformerConfig(preset="base")
    big = TransformerConfig(preset="big")
    assert (base.num_layers, base.d_model, base.d_ff, base.num_heads, base.dropout) == (
        6,
        512,
        2048,
        8,
        0.1,
    )
    assert (big.num_layers, big.d_model, big.d_ff, big.num_heads, big.dropout) == (
        6,
        1024,
        4096,
        16,
        0.3,
    )
    # An explicit value beats the preset.
    assert TransformerConfig(preset="big", dropout=0.1).dropout == 0.1


def test_heads_must_divide_d_model(tmp_path: Path) -> None:
    path = write(tmp_path, "model:\n  arch: transformer\n  d_model: 10\n  num_heads: 3\n")
    with pytest.raises(NmtError, match="divisible"):
        load_config(path)


def test_arch_selects_the_model_config(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, "model:\n  arch: rnn\n  cell: gru\n"))
    assert isinstance(config.model, RNNConfig)
    assert config.model.cell == "gru"


# -- one merge rule for decoding options (issue 23) ------------------------------------------


def test_none_keeps_an_option_and_unset_takes_its_value_away() -> None:
    from nmt.config import UNSET, DecodingConfig, optional

    model = DecodingConfig(patience=1.0, top_k=5, seed=3, top_p=0.9)
    assert model.updated(patience=None, beam_size=6) == model.model_copy(update={"beam_size": 6})
    cleared = model.updated(patience=UNSET, top_k=UNSET, seed=UNSET, top_p=UNSET)
    assert (cleared.patience, cleared.top_k, cleared.seed, cleared.top_p) == (None,) * 4
    # Before, `--stopping exact` could not be used on a model that sets patience.
    assert model.updated(stopping="exact", patience=UNSET).stopping == "exact"
    with pytest.raises(NmtError, match="patience"):
        model.updated(stopping="exact")
    with pytest.raises(NmtError, match="beam_size"):
        model.updated(beam_size=UNSET)  # a required option cannot be taken away
    assert optional(float)("none") is UNSET and optional(float)("2.5") == 2.5


def test_the_server_merges_as_the_command_line_does() -> None:
    from fastapi.exceptions import RequestValidationError

    from nmt.config import UNSET, DecodingConfig
    from nmt.serve.app import merged_options

    model = DecodingConfig(patience=1.0, top_k=5)
    given = {"stopping": "exact", "patience": None, "beam_size": 6}
    expected = model.updated(stopping="exact", patience=UNSET, beam_size=6)
    assert merged_options(model, given) == expected
    assert merged_options(model, {"beam_size": 6}).patience == 1.0  # left out: kept
    with pytest.raises(RequestValidationError):
        merged_options(model, {"stopping": "exact"})


def test_a_blank_prefix_is_refused_naming_the_option() -> None:
    from nmt.config import DecodingConfig

    with pytest.raises(NmtError, match="prefix"):
        DecodingConfig().updated(prefix="   ")
