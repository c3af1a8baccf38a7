"""Put the classifier to work: reload it, quantize it for CPUs, time it, and classify from a shell.

Introduced in notebook 06. The classifier is the folder notebook 04 saves (safetensors weights
and the tokenizer). From a shell:

    python -m helpers.serving "A wonderful film." "Two hours I will never get back."
    cat reviews.txt | python -m helpers.serving --int8      # one review per line

Each review gets one line: the label, its probability, and the start of the review; a review
without one token the model knows gets `unknown` and `-`. Reviews are classified and printed 256
at a time, so a long stream is answered as it comes.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import warnings
from collections.abc import Iterable, Iterator
from pathlib import Path

import torch
from torch import nn

from helpers.classification import BertForReviewClassification, check_reviews, classify_reviews
from helpers.measure import median_seconds
from helpers.models import check_model_folder, classifier_dir
from helpers.profile import get_profile
from helpers.session import quiet_libraries

INT8_MAX_ACCURACY_DROP = 0.02  # int8 may cost at most 2 points of held-out accuracy (measured: 0.5-0.8)


def load_classifier(folder: str | Path) -> tuple[BertForReviewClassification, object]:
    """Load (model, tokenizer) that notebook 04 saved, or say in one sentence why the folder is not one."""
    from transformers import AutoTokenizer, BertConfig

    folder = Path(folder).expanduser()
    if not folder.is_dir():
        raise FileNotFoundError(f"No trained classifier in {folder}: run notebook 04 first, or pass --model FOLDER.")
    check_model_folder(folder, architectures=("BertForReviewClassification",))
    again = "save it again (notebook 04's last section)"
    try:  # check_model_folder has read it as JSON; its values may still be nonsense ("num_labels": "2")
        config = BertConfig.from_pretrained(folder)
        labels, positions = int(config.num_labels), int(config.max_position_embeddings)
    except Exception as error:  # TypeError, AttributeError, a validation error: which depends on the version
        raise ValueError(f"The config.json in {folder} cannot be read as a BERT configuration "
                         f"({type(error).__name__}): {again}.") from None
    if labels != 2:  # a third probability would be ignored, the second read as "positive"
        raise ValueError(f"The classifier in {folder} has {labels} labels: this series' classifiers "
                         "have 2 (negative, positive); give a folder notebook 04 saved.")
    if positions < 3:
        raise ValueError(f"The classifier in {folder} reads {positions} positions: too few "
                         "for [CLS], one token and [SEP]; give a folder notebook 04 saved.")
    try:
        model, info = BertForReviewClassification.from_pretrained(folder, config=config, output_loading_info=True)
        tokenizer = AutoTokenizer.from_pretrained(folder)
    except Exception as error:  # a truncated weights file, a missing tokenizer: many types
        raise ValueError(f"The classifier in {folder} cannot be loaded ({type(error).__name__}): {again}.") from None
    missing = sorted(info["missing_keys"]) + sorted(key for key, *_ in info.get("mismatched_keys", []))
    if missing:  # transformers would fill them with random numbers and only warn (a warning we silence)
        raise ValueError(f"The classifier in {folder} lacks {len(missing)} of its weights (for example "
                         f"{missing[0]}): they would be random. {again[0].upper()}{again[1:]}.")
    for name, tensor in _saved_tensors(folder):
        if not tensor.is_floating_point():
            raise ValueError(f"The weight {name} in {folder} is stored as {tensor.dtype}, not as floats: {again}.")
        if not torch.isfinite(tensor).all():
            raise ValueError(f"The weight {name} in {folder} holds NaN or infinite values: {again}.")
    if len(tokenizer) != model.config.vocab_size:  # e.g. no tokenizer files: a 5-token tokenizer reads [UNK] only
        raise ValueError(f"The tokenizer in {folder} has {len(tokenizer):,} tokens but the model "
                         f"{model.config.vocab_size:,}: it is not the model's own tokenizer; {again}.")
    return model.eval(), tokenizer


def _saved_tensors(folder: Path):
    """Yield (name, tensor) for every tensor in the folder's weights file, as stored (dtype and all)."""
    weights = folder / "model.safetensors"
    if weights.is_file():
        from safetensors import SafetensorError, safe_open

        try:
            with safe_open(weights, framework="pt") as handle:
                for name in handle.keys():
                    yield name, handle.get_tensor(name)
        except SafetensorError as error:
            raise ValueError(f"{weights} cannot be read ({error}): save it again.") from None
    else:
        try:
            saved = torch.load(folder / "pytorch_model.bin", map_location="cpu", weights_only=True)
        except Exception as error:  # a truncated or foreign pickle: many types
            raise ValueError(f"{folder / 'pytorch_model.bin'} cannot be read ({type(error).__name__}): "
                             "save it again.") from None
        yield from saved.items()


def quantize_int8(model: nn.Module, only: set[str] | None = None) -> nn.Module:
    """Return a copy whose Linear layers (or those named in `only`) compute in int8.

    Dynamic quantization: weights are stored as int8 once, with one scale per output channel (one
    per layer flipped 4 % of the labels of a lightly trained classifier, per channel 3 %); each
    activation is quantized on the fly with its own scale. CPU only. PyTorch marks
    `torch.ao.quantization` as deprecated in favour of torchao, but it still ships with the torch
    pinned in requirements.txt.
    """
    import copy

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the deprecation notice above, repeated for every layer
        from torch.ao.quantization import per_channel_dynamic_qconfig, quantize_dynamic

        layers = {nn.Linear} if only is None else set(only)
        return quantize_dynamic(copy.deepcopy(model).cpu().eval(), dict.fromkeys(layers, per_channel_dynamic_qconfig),
                                dtype=torch.qint8)


def weights_megabytes(model: nn.Module) -> float:
    """Return the size of the model's saved state (weights, int8 ones packed) in megabytes."""
    import io

    buffer = io.BytesIO()
    torch.save(model.state_dict(), buffer)
    return buffer.tell() / 1e6


def median_latency_ms(model: nn.Module, batch: dict[str, torch.Tensor], repeats: int = 5) -> float:
    """Return the median milliseconds of one forward pass on `batch`, after one warm-up pass."""
    with torch.inference_mode():
        return median_seconds(lambda: model(**batch), repeats=repeats) * 1000


def read_reviews(stdin) -> Iterator[str]:
    """Yield the non-blank lines of standard input as they arrive; ValueError if it is not UTF-8 text.

    A line ends at \\n, \\r\\n or a lone \\r (old Mac files, `printf 'a\\rb'`), whatever the stream's mode.
    """
    if stdin is None:  # started with standard input closed (`<&-`)
        raise ValueError("Standard input is closed: give the reviews as arguments, or one per line on standard input.")
    while True:
        try:
            piece = stdin.readline()  # returns what a pipe has so far: no waiting for a full buffer
            piece.encode("utf-8")  # in the POSIX locale Python reads undecodable bytes as lone surrogates
        except (UnicodeDecodeError, UnicodeEncodeError):
            raise ValueError("Standard input is not UTF-8 text: give one review per line.") from None
        except OSError as error:  # a device error (EIO), a terminal that went away
            raise ValueError(f"Standard input cannot be read further ({error.strerror or error}).") from None
        if not piece:
            return
        yield from (line for line in re.split(r"\r\n|\r|\n", piece) if line.strip())


class WriteError(Exception):
    """Standard output refused a line (a full disk, a closed terminal): not a reader going away."""


def print_labels(model, tokenizer, texts: Iterable[str], max_length: int, batch_size: int = 256) -> int:
    """Classify and print the reviews a batch at a time (flat memory, results as they come); return how many.

    Each review is checked as it arrives. When one is unusable, or the input cannot be read further,
    the reviews before it are classified and printed first, then the error is raised: no good line is lost.
    """
    done, batch, failure = 0, [], None

    def checked() -> Iterator[str]:
        nonlocal failure
        try:
            for number, text in enumerate(texts, start=1):
                yield check_reviews([text], first=number)[0]
        except ValueError as error:  # an unusable review, input that is not UTF-8 or cannot be read
            failure = error

    def answer() -> None:
        nonlocal done, batch
        labels = classify_reviews(model, tokenizer, batch, max_length, first=done + 1)
        lines = [_line(text, label, probability) for text, (label, probability) in zip(batch, labels)]
        try:
            print("\n".join(lines), flush=True)
        except BrokenPipeError:
            raise
        except OSError as error:
            raise WriteError(error.strerror or str(error)) from None
        done, batch = done + len(batch), []

    for text in checked():
        batch.append(text)
        if len(batch) == batch_size:
            answer()
    if batch:
        answer()
    if failure:
        raise failure
    if not done:
        raise ValueError("Nothing to classify: give the text of at least one review.")
    return done


def _line(text: str, label: str, probability: float) -> str:
    preview = " ".join(text.split())
    shown = "-" if label == "unknown" else f"{probability:.3f}"
    return f"{label}\t{shown}\t{preview[:60] + ('...' if len(preview) > 60 else '')}"


def main(argv: list[str] | None = None, stdin=None) -> int:
    """Classify reviews given as arguments, or one per line on standard input; 2 on bad input."""
    parser = argparse.ArgumentParser(prog="python -m helpers.serving", description="Classify movie reviews.")
    parser.add_argument("reviews", nargs="*", help="review texts (read from standard input when none are given)")
    parser.add_argument("--model", help="classifier folder (default: notebook 04's, in the models folder)")
    parser.add_argument("--int8", action="store_true", help="use dynamic int8 quantization (CPU)")
    parser.add_argument("--max-length", type=int, default=None,
                        help="tokens per window (default: the profile's); a longer review is read through several")
    args = parser.parse_args(argv)
    stdin = sys.stdin if stdin is None else stdin
    if sys.stdout is None:  # started with standard output closed (`>&-`): print() would drop every label
        parser.exit(2, "error: standard output is closed: there is nowhere to write the labels.\n")
    quiet_libraries(offline=True)  # no progress bars on stderr; the classifier is a local folder
    try:
        if args.model is not None and not args.model.strip():
            raise ValueError("--model '': give the folder notebook 04 saved, or leave --model out for it.")
        if args.reviews:
            check_reviews(args.reviews)
        model, tokenizer = load_classifier(args.model or classifier_dir(get_profile()))
        longest = model.config.max_position_embeddings
        max_length = min(get_profile().max_length, longest) if args.max_length is None else args.max_length
        if not 3 <= max_length <= longest:
            raise ValueError(f"--max-length {max_length}: give 3 to {longest} tokens ([CLS], [SEP] and at least one).")
        if args.int8:
            model = quantize_int8(model)
        typed = not args.reviews and getattr(stdin, "isatty", lambda: False)()  # answer each line as it is typed
        print_labels(model, tokenizer, args.reviews or read_reviews(stdin), max_length, batch_size=1 if typed else 256)
    except (ValueError, FileNotFoundError) as error:
        parser.exit(2, f"error: {error}\n")
    except BrokenPipeError:  # the reader went away (`| head -1`): stop quietly, as Unix tools do
        _silence_stdout()
    except WriteError as error:  # a full disk (`> /dev/full`), a closed terminal: say it, drop the unwritten rest
        _silence_stdout()
        parser.exit(1, f"error: cannot write the labels ({error}).\n")
    except KeyboardInterrupt:  # Ctrl-C: the labels printed so far are complete lines
        parser.exit(130, "interrupted: the lines printed so far are complete.\n")
    return 0


def _silence_stdout() -> None:
    """Point standard output at /dev/null, so the interpreter's last flush of unwritten lines cannot fail again."""
    try:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    except (AttributeError, OSError, ValueError):  # not a real file (a test's capture): nothing to flush at exit
        pass


if __name__ == "__main__":
    sys.exit(main())
