"""`python -m edge_vljepa.train` on a machine without the MiniLM weights (the lent GPU machine: no
network, 64 MiB transfer limit; the weights are 87 MB).

    python scripts/gpu_train/train.py FEATURES.pt [python -m edge_vljepa.train arguments]

The frozen backbone's features of every text were computed where MiniLM is installed
(scripts/gpu_train/features.py) and are loaded here; training computes each text's features once
from the frozen backbone anyway, so the run is the same. A text without a precomputed feature is an
error, never a random-backbone feature. PYTHONPATH must reach the repository and the MiniLM package's
tokenizer files (its folder without model.safetensors).
"""
import sys

import torch

from edge_vljepa import train

FEATURES = torch.load(sys.argv[1], weights_only=True)
train.load_minilm = lambda model: None  # backbone unused: all features are precomputed
_init, _call = train.TextFeatures.__init__, train.TextFeatures.__call__



def init(self, model, chunk=256):
    _init(self, model, chunk)
    self.load_state_dict(FEATURES)


def call(self, texts):
    missing = [t for t in texts if t not in self.index]
    if missing:
        raise SystemExit(f"error: texts without precomputed features: {missing[:5]}")
    return _call(self, texts)


train.TextFeatures.__init__, train.TextFeatures.__call__ = init, call
sys.exit(train.main(sys.argv[2:]))
