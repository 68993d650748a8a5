"""A trained multitag model directory, loaded by Hugging Face transformers as it is, tags like
`trainer tag`.

The directory is loaded with `BertForTokenClassification.from_pretrained` (its config.json names
the architecture and the tags, `id2label`); each title of a labeled JSONL file (`trainer label`'s:
words and character offsets) is tokenized as pre-split words, each word is tagged by the logits of
its first sub-word, and entities are decoded as `trainer tag` does (strict IOB2 spans, score = the
mean of the words' softmax probabilities). Both sides must give the same entities, and scores
within --tolerance: a check of the logits through their argmax and softmax.

    .cache/bench-venv/bin/python bench/reference/hf_check.py --model runs/hf-check \
        --labeled runs/labeled.jsonl --split test --limit 500
"""
import argparse
import json
import subprocess
import sys

import torch
from transformers import AutoTokenizer, BertForTokenClassification


def strict_spans(tags):
    """(label, first word, last word + 1) of each strict IOB2 entity, as seqeval's strict mode."""
    spans, current = [], None
    for i, tag in enumerate(tags + ["O"]):
        if current and not (tag.startswith("I-") and tag[2:] == current[0]):
            spans.append((current[0], current[1], i))
            current = None
        if tag.startswith("B-"):
            current = (tag[2:], i)
    return spans


def hf_entities(model, tokenizer, record, max_tokens):
    words = record["words"]
    enc = tokenizer(words, is_split_into_words=True, truncation=True, max_length=max_tokens,
                    return_tensors="pt")
    with torch.no_grad():
        probs = model(**enc).logits[0].softmax(-1)
    first = {}
    for position, word in enumerate(enc.word_ids()):
        if word is not None and word not in first:
            first[word] = position
    tags, scores = [], []
    for w in range(len(words)):
        if w in first:
            p, best = probs[first[w]].max(-1)
            tags.append(model.config.id2label[int(best)])
            scores.append(float(p))
        else:  # past the cut: O, as the tagger marks a truncated title
            tags.append("O")
            scores.append(1.0)
    offsets = record["offsets"]
    return [
        {"label": label, "start": offsets[a][0], "end": offsets[b - 1][1],
         "score": sum(scores[a:b]) / (b - a)}
        for label, a, b in strict_spans(tags)
    ]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", required=True)
    ap.add_argument("--labeled", required=True, help="trainer label's JSONL")
    ap.add_argument("--split", default="test")
    ap.add_argument("--limit", type=int, default=500)
    ap.add_argument("--trainer", default="target/release/trainer")
    ap.add_argument("--max-tokens", type=int, default=48)
    ap.add_argument("--tolerance", type=float, default=1e-4)
    args = ap.parse_args()

    records = [json.loads(l) for l in open(args.labeled, encoding="utf-8") if l.strip()]
    records = [r for r in records if r["split"] == args.split][: args.limit]
    model = BertForTokenClassification.from_pretrained(args.model).eval()
    tokenizer = AutoTokenizer.from_pretrained(args.model)
    ours = subprocess.run(
        [args.trainer, "tag", "--model", args.model],
        input="".join(r["title"] + "\n" for r in records),
        capture_output=True, text=True, check=True,
    ).stdout.splitlines()
    assert len(ours) == len(records), (len(ours), len(records))
    same, worst, mismatches = 0, 0.0, []
    for record, line in zip(records, ours):
        mine = json.loads(line)["entities"]
        theirs = hf_entities(model, tokenizer, record, args.max_tokens)
        key = lambda es: [(e["label"], e["start"], e["end"]) for e in es]
        if key(mine) != key(theirs):
            mismatches.append((record["title"], key(mine), key(theirs)))
            continue
        same += 1
        for a, b in zip(mine, theirs):
            worst = max(worst, abs(a["score"] - b["score"]))
    print(json.dumps({
        "model": args.model, "titles": len(records), "same_entities": same,
        "max_score_difference": worst, "transformers": __import__("transformers").__version__,
        "torch": torch.__version__,
    }))
    for m in mismatches[:5]:
        print("differs:", m, file=sys.stderr)
    sys.exit(0 if not mismatches and worst <= args.tolerance else 1)


if __name__ == "__main__":
    main()
