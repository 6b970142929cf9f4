"""Precompute the frozen MiniLM backbone features of every text the training of `default` can meet.

    python scripts/gpu_train/features.py FEATURES.pt

Run where the MiniLM package is installed; scripts/gpu_train/train.py loads the result on a machine
without it (see the model card: the lent GPU machine cannot receive the 87 MB MiniLM weights).
"""
import sys

import torch

from edge_vljepa import train
from edge_vljepa.config import get_preset
from edge_vljepa.data.world import ANSWER_OPTIONS, sample_clip, world_labels

texts = set(world_labels()) | {o for opts in ANSWER_OPTIONS.values() for o in opts}
for i in range(40000):  # the train text universe saturates at 6030 texts by clip 20000
    s = sample_clip("train", i, seed=0, seconds=(2.0, 4.0), fps=4.0).segments[0]
    texts.update(c["text"] for c in s.captions("train"))
    texts.add(s.label)
    for q in s.questions():
        texts.add(q["answer"])
        texts.update(q["options"])
model = train.new_model(get_preset("default"), 0)
f = train.TextFeatures(model)
f(sorted(texts))
torch.save(f.state_dict(), sys.argv[1])
print(len(texts), "texts")
