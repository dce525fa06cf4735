"""Helpers of the ``prunekit_synthetic`` lmms-eval task: where the data is, the prompt, the score.

The data folder (``PRUNEKIT_SYNTHETIC_DATA``, default ``./prunekit-synthetic``) holds ``items.jsonl`` and
``videos/*.mp4`` as written by ``prunekit.benchmarks.synthetic.build_split("test", N, DIR)`` (under
``DIR/test``). The prompt text is what the bundled tiny model was trained on; its chat template adds the
turn markers and the video placeholder.
"""

import os

ROOT = os.path.join(os.environ.get("PRUNEKIT_SYNTHETIC_DATA", "prunekit-synthetic"), "test")
DATA_FILES = {"test": os.path.join(ROOT, "items.jsonl")}


def doc_to_visual(doc):
    return [os.path.join(ROOT, doc["video"])]


def doc_to_text(doc):
    lines = [doc["question"]]
    if doc.get("options"):
        lines += [f"{letter}. {option}" for letter, option in zip("ABCD", doc["options"])]
        lines.append("Answer with the option's word from the given choices directly.")
    else:
        lines.append("Answer the question using a single word.")
    return "\n".join(lines)


def process_results(doc, results):
    answer = results[0].strip().strip(".").split()
    return {"exact_match": float(bool(answer) and answer[0].lower() == doc["answer_text"].lower())}
