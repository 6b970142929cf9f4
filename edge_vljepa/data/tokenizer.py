"""The world tokenizer: a word-level `tokenizers` tokenizer over the synthetic world's vocabulary.

The default model's Predictor (queries) and Y-Decoder (captions) speak the world's language: 87
words plus [PAD], [UNK], [CLS] (BOS), [SEP] (EOS). A 128-row token table instead of a 30522-row
WordPiece table keeps both components glasses-sized; the Y-Encoder keeps MiniLM's open vocabulary,
so labels and retrieval texts are not limited to these words. Queries with other words map to [UNK].

The built file ships as edge_vljepa/assets/world_tokenizer.json (a test checks it equals a fresh
build); `python -m edge_vljepa.data vocab` lists the words.
"""

from __future__ import annotations

from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors

from edge_vljepa.data.world import vocabulary
from edge_vljepa.preprocess import WORLD_TOKENIZER

SPECIAL_TOKENS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]")


def build_world_tokenizer() -> Tokenizer:
    vocab = {token: i for i, token in enumerate(SPECIAL_TOKENS + vocabulary())}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    tok.add_special_tokens(list(SPECIAL_TOKENS))  # so decode(skip_special_tokens=True) drops them
    tok.normalizer = normalizers.Lowercase()
    tok.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.WhitespaceSplit(),
                                                 pre_tokenizers.Punctuation()])
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", special_tokens=[("[CLS]", vocab["[CLS]"]), ("[SEP]", vocab["[SEP]"])])
    tok.decoder = decoders.WordPiece(prefix="##", cleanup=True)  # joins words with spaces, tidies " ,"
    return tok


if __name__ == "__main__":
    build_world_tokenizer().save(str(WORLD_TOKENIZER))
    print(f"wrote {WORLD_TOKENIZER}")
