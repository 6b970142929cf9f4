"""Preprocessing: frames to the X-Encoder input, real tokenizers to padded ids, the world tokenizer asset."""

from __future__ import annotations

import json

import numpy as np
import pytest

from edge_vljepa.config import get_preset
from edge_vljepa.contract import build_contract
from edge_vljepa.data.tokenizer import build_world_tokenizer
from edge_vljepa.preprocess import (
    WORLD_TOKENIZER,
    PreprocessSpec,
    TextTokenizer,
    TextTooLongError,
    prepare_frame,
    to_video_tensor,
    tokenizer_file,
)


def test_prepare_frame_resizes_short_side_and_centre_crops():
    frame = np.zeros((60, 100, 3), np.uint8)
    frame[:, 40:60] = 255  # a bright vertical band in the centre
    out = prepare_frame(frame, 30)
    assert out.shape == (30, 30, 3) and out.dtype == np.uint8
    assert out[:, 15].min() == 255 and out[:, 0].max() == 0  # band stays centred, borders cropped
    with pytest.raises(ValueError, match="RGB frame"):
        prepare_frame(np.zeros((10, 10), np.uint8), 8)


@pytest.mark.parametrize("preset", ["tiny", "default"])
def test_video_tensor_matches_the_contract(preset):
    cfg = get_preset(preset)
    spec = PreprocessSpec.from_config(cfg)
    frames = [np.full((spec.img_size, spec.img_size, 3), 128, np.uint8)] * spec.num_frames
    video = to_video_tensor(frames, spec)
    build_contract(cfg)["x_encoder"].inputs[0].check("x_encoder", video)
    expected = (128 / 255 - np.array(spec.mean)) / np.array(spec.std)
    np.testing.assert_allclose(video[0, :, 0, 0, 0], expected, rtol=1e-6)


def test_text_tokenizer_pads_and_refuses_overlong_text():
    tok = TextTokenizer("minilm", max_len=8)
    ids, mask = tok.encode("a red cube")
    assert ids.shape == mask.shape == (1, 8) and ids.dtype == mask.dtype == np.int64
    assert ids[0, 0] == 101 and mask.tolist() == [[1, 1, 1, 1, 1, 0, 0, 0]]  # [CLS] a red cube [SEP]
    assert tok.decode(ids[0]) == "a red cube"
    with pytest.raises(TextTooLongError, match="has 12 tokens; this model accepts at most 8"):
        tok.encode("one two three four five six seven eight nine ten", what="query")


def test_world_tokenizer_asset_is_current_and_fits_the_default_preset():
    shipped = json.loads(WORLD_TOKENIZER.read_text())
    assert shipped == json.loads(build_world_tokenizer().to_str())
    cfg = get_preset("default")
    tok = TextTokenizer("world", cfg.predictor.max_query_len)
    assert tok.tokenizer.get_vocab_size() <= min(cfg.predictor.vocab_size, cfg.y_decoder.vocab_size)
    d = cfg.y_decoder
    assert [tok.tokenizer.token_to_id(t) for t in ("[PAD]", "[CLS]", "[SEP]")] == [
        d.pad_token_id, d.bos_token_id, d.eos_token_id]
    ids, _ = tok.encode("What colour is the star?")
    assert tok.decode(ids[0]) == "what colour is the star?"


def test_unknown_tokenizer_says_what_to_do():
    with pytest.raises(FileNotFoundError, match="tokenizer.json"):
        tokenizer_file("llama3")
