"""`wordpiece_tokenize` equals the fast uncased BertTokenizer; head+tail keeps both ends."""

import pytest
from conftest import notebook_definitions
from transformers import AutoTokenizer

from helpers.data import load_reviews
from helpers.models import minilm_path
from helpers.profile import get_profile
from helpers.tokenization import (
    CJK_RANGES,
    WHITESPACE,
    encode_head_tail,
    encode_windows,
    head_tail,
    normalize,
    pre_tokenize,
    windows,
    wordpiece_tokenize,
)

TOKENIZER = AutoTokenizer.from_pretrained(str(minilm_path()))
VOCAB = TOKENIZER.get_vocab()
ADVERSARIAL = {
    "empty": "",
    "only whitespace": " \t\n\u00a0\u3000 ",
    "accents": "Café naïve résumé ÉLAN Ångström señor",
    "chinese": "我爱电影 and 映画 mixed很好",
    "emoji": "great 😀🎬 movie 👍🏽!",
    "300-character word": "a" * 300,
    "100 and 101 characters": "b" * 100 + " " + "c" * 101,
    "control characters": "ctrl\x00\x07\x1b char\u200b zero\ufffd\x85next\x0bline",
    "mixed punctuation": "¿Qué? ¡No!... (wow) -- \"yes\" <br /> 'it's' $5.00 @me #1 a/b–c—d “e” …",
    "unicode case": "İstanbul ΣΑΣ ß ﬁ ǅ Ⅻ ½ ² Ａｂｃ",
    "combining marks": "a\u0301\u0308b e\u0301",
}


@pytest.mark.parametrize("text", ADVERSARIAL.values(), ids=ADVERSARIAL.keys())
def test_adversarial_inputs_match_the_fast_tokenizer(text):
    assert wordpiece_tokenize(text, VOCAB) == TOKENIZER.tokenize(text)


@pytest.mark.parametrize("text", ADVERSARIAL.values(), ids=ADVERSARIAL.keys())
def test_each_stage_matches_its_rust_counterpart(text):
    backend = TOKENIZER.backend_tokenizer
    assert normalize(text) == backend.normalizer.normalize_str(text)
    normalized = normalize(text)
    assert pre_tokenize(normalized) == [word for word, _ in backend.pre_tokenizer.pre_tokenize_str(normalized)]


def test_every_cpu_profile_review_matches_the_fast_tokenizer(imdb_folder, clean_env):
    clean_env.setenv("TUTORIAL_DATASET", str(imdb_folder))
    splits = load_reviews(get_profile("cpu"), clean=False)
    texts = [text for split in splits.values() for text in split["text"]]
    fast = TOKENIZER(texts, add_special_tokens=False)["input_ids"]
    expected = [TOKENIZER.convert_ids_to_tokens(ids) for ids in fast]
    mismatches = [t for t, tokens in zip(texts, expected) if wordpiece_tokenize(t, VOCAB) != tokens]
    assert len(texts) == 11_000 and mismatches == []


def test_the_notebook_version_equals_the_helper():
    notebook = notebook_definitions(
        "02_tokenization.ipynb", ["WHITESPACE", "CJK", "clean", "isolate_cjk", "strip_accents", "normalize",
                                  "is_punctuation", "pre_tokenize", "wordpiece"])
    assert notebook["WHITESPACE"] == WHITESPACE and notebook["CJK"] == CJK_RANGES
    for text in ADVERSARIAL.values():
        words = notebook["pre_tokenize"](notebook["normalize"](text))
        pieces = [p for w in words for p in notebook["wordpiece"](w, VOCAB)]
        assert pieces == wordpiece_tokenize(text, VOCAB)


def test_head_tail_keeps_both_ends():
    ids = list(range(10))
    assert head_tail(ids, 6, head=2) == [0, 1, 6, 7, 8, 9]
    assert head_tail(ids, 6, head=6) == [0, 1, 2, 3, 4, 5]
    assert head_tail(ids, 20, head=2) == ids


def test_windows_cover_every_id_with_the_fewest_full_windows():
    assert windows(list(range(5)), 8) == [list(range(5))]
    assert windows(list(range(8)), 8) == [list(range(8))]
    cut = windows(list(range(20)), 8)  # ceil(20 / 8) = 3 windows, starting at 0, 6, 12
    assert cut == [list(range(0, 8)), list(range(6, 14)), list(range(12, 20))]
    for length in range(1, 60):
        found = windows(list(range(length)), 8)
        assert len(found) == max(1, -(-length // 8)) and all(len(w) == min(8, length) for w in found)
        assert sorted({i for w in found for i in w}) == list(range(length)), "every id is read"


def test_encode_windows_reads_a_long_review_whole_and_a_short_one_as_head_tail_does():
    long_text = "first " + "middle " * 600 + "last"
    [cut] = encode_windows(TOKENIZER, [long_text], max_length=256)
    content = TOKENIZER(long_text, add_special_tokens=False)["input_ids"]
    assert len(cut) == -(-len(content) // 254) and all(len(w) == 256 for w in cut)
    assert all(w[0] == TOKENIZER.cls_token_id and w[-1] == TOKENIZER.sep_token_id for w in cut)
    assert cut[0][1:-1] == content[:254] and cut[-1][1:-1] == content[-254:]
    [short] = encode_windows(TOKENIZER, ["A gem."], max_length=256)
    assert short == encode_head_tail(TOKENIZER, ["A gem."], max_length=256, head=64)


def test_encode_head_tail_adds_special_tokens_within_the_limit():
    long_text = "first " + "middle " * 600 + "last"
    [ids] = encode_head_tail(TOKENIZER, [long_text], max_length=512, head=128)
    tokens = TOKENIZER.convert_ids_to_tokens(ids)
    assert len(ids) == 512 and tokens[:2] == ["[CLS]", "first"] and tokens[-2:] == ["last", "[SEP]"]
    [short] = encode_head_tail(TOKENIZER, ["A gem."], max_length=512, head=128)
    assert short == TOKENIZER("A gem.")["input_ids"]
