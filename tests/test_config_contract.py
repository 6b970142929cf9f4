"""Config validation, presets, and the contract (shapes derived from config, stable hash, clear errors)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from edge_vljepa.config import (
    PRESETS,
    ConfigError,
    ModelConfig,
    PredictorConfig,
    XEncoderConfig,
    YDecoderConfig,
    YEncoderConfig,
    get_preset,
)
from edge_vljepa.contract import ContractError, build_contract


@pytest.mark.parametrize("name", list(PRESETS))
def test_presets_build_and_round_trip(name):
    cfg = get_preset(name)
    assert ModelConfig.from_dict(cfg.to_dict()) == cfg
    assert build_contract(ModelConfig.from_dict(cfg.to_dict())).hash() == build_contract(cfg).hash()


def test_paper_preset_matches_the_paper():
    cfg = get_preset("paper")
    x, p = cfg.x_encoder, cfg.predictor
    assert (x.img_size, x.num_frames, x.patch_size, x.tubelet_size) == (256, 16, 16, 2)
    assert (x.embed_dim, x.depth, x.num_heads, x.mlp_hidden) == (1024, 24, 16, 4096)
    assert (p.hidden_size, p.num_attention_heads, p.num_key_value_heads) == (2048, 32, 8)
    assert p.intermediate_size == 8192
    assert (p.num_hidden_layers, p.rope_theta, cfg.embed_dim) == (8, 500000.0, 1536)
    assert cfg.y_encoder.arch == "gemma3"


def test_unknown_preset_lists_valid_names():
    with pytest.raises(ConfigError, match="tiny, default, paper"):
        get_preset("huge")


@pytest.mark.parametrize("klass,kwargs,match", [
    (XEncoderConfig, {"img_size": 100, "patch_size": 16}, "multiple of patch_size"),
    (XEncoderConfig, {"num_frames": 5, "tubelet_size": 2}, "multiple of tubelet_size"),
    (XEncoderConfig, {"embed_dim": 100, "num_heads": 3}, "divisible by num_heads"),
    (XEncoderConfig, {"embed_dim": 8, "num_heads": 2}, "too small for 3D RoPE"),
    (XEncoderConfig, {"depth": 0}, "depth must be > 0"),
    (PredictorConfig, {"num_attention_heads": 32, "num_key_value_heads": 5}, "grouped-query"),
    (YEncoderConfig, {"arch": "t5"}, "'bert' or 'gemma3'"),
    (YDecoderConfig, {"eos_token_id": 10**9}, "eos_token_id"),
])
def test_config_validation_names_the_field(klass, kwargs, match):
    with pytest.raises(ConfigError, match=match):
        klass(**kwargs)


def test_from_dict_rejects_unknown_fields():
    d = get_preset("tiny").to_dict()
    d["x_encoder"]["patchsize"] = 8
    with pytest.raises(ConfigError, match="patchsize"):
        ModelConfig.from_dict(d)


def test_contract_shapes_follow_config():
    cfg = get_preset("tiny")
    c = build_contract(cfg)
    x = cfg.x_encoder
    assert c["x_encoder"].inputs[0].shape == (1, 3, x.num_frames, x.img_size, x.img_size)
    assert c["x_encoder"].outputs[0].shape == (1, 2 * 4 * 4, x.embed_dim)
    assert c["predictor"].inputs[1].shape == (1, cfg.predictor.max_query_len)
    d = cfg.y_decoder
    assert c["y_decoder_step"].outputs[1].shape == (d.num_hidden_layers, 2, d.num_key_value_heads,
                                                     d.prefix_len + 1 + d.max_new_tokens, d.head_dim)
    assert [m.name for m in c.for_component("y_decoder")] == ["y_decoder_prefill", "y_decoder_step"]


def test_contract_hash_is_stable_and_sensitive():
    tiny = get_preset("tiny")
    assert build_contract(tiny).hash() == build_contract(get_preset("tiny")).hash()
    changed = dataclasses.replace(tiny, predictor=dataclasses.replace(tiny.predictor, max_query_len=17))
    assert build_contract(changed).hash() != build_contract(tiny).hash()
    hashes = {build_contract(get_preset(n)).hash() for n in PRESETS}
    assert len(hashes) == len(PRESETS)


def test_contract_validation_names_the_tensor():
    spec = build_contract(get_preset("tiny"))["predictor"]
    good = {t.name: t.example() for t in spec.inputs}
    spec.check_inputs(good)
    bad = dict(good, query_ids=np.zeros((1, 3), np.int64))
    with pytest.raises(ContractError, match="'query_ids' has shape \\(1, 3\\)"):
        spec.check_inputs(bad)
    bad = dict(good, query_mask=good["query_mask"].astype(np.float32))
    with pytest.raises(ContractError, match="'query_mask' has dtype float32"):
        spec.check_inputs(bad)
    with pytest.raises(ContractError, match="missing \\['visual_tokens'\\]"):
        spec.check_inputs({k: v for k, v in good.items() if k != "visual_tokens"})
    with pytest.raises(ContractError, match="unknown method"):
        build_contract(get_preset("tiny"))["decoder"]
