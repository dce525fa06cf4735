import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from prunekit.ops.nosync import partition_indices, to_device, true_indices


@given(st.lists(st.booleans(), min_size=1, max_size=300))
def test_true_indices_equals_nonzero(bits):
    mask = torch.tensor(bits)
    expected = torch.nonzero(mask).flatten()
    assert torch.equal(true_indices(mask, int(mask.sum())), expected)
    kept, rest = partition_indices(mask, int(mask.sum()))
    assert torch.equal(kept, expected) and torch.equal(rest, torch.nonzero(~mask).flatten())


def test_true_indices_refuses_impossible_count():
    with pytest.raises(ValueError, match="asked for 4"):
        true_indices(torch.ones(3, dtype=torch.bool), 4)


def test_to_device_keeps_values_and_dtype():
    out = to_device([3, 1, 2], "cpu")
    assert out.dtype == torch.long and out.tolist() == [3, 1, 2]
    assert to_device([0.5], "cpu", torch.float32).dtype == torch.float32


@given(st.integers(1, 4), st.integers(1, 12), st.data())
def test_fill_on_device_matches_host_fill(batch, n, data):
    from prunekit.ops.dpp import fill_on_device

    valid = torch.tensor(data.draw(st.lists(st.lists(st.booleans(), min_size=n, max_size=n), min_size=batch,
                                            max_size=batch)))
    valid[:, 0] = True
    scores = torch.tensor(data.draw(st.lists(st.lists(st.sampled_from([0.0, 0.5, 1.0, float("nan")]), min_size=n,
                                                      max_size=n), min_size=batch, max_size=batch)))
    keep, chosen, count = [], torch.full((batch, n), -1, dtype=torch.int32), []
    for b in range(batch):
        items = torch.nonzero(valid[b]).flatten().tolist()
        k = data.draw(st.integers(1, len(items)))
        greedy = data.draw(st.permutations(items))[: data.draw(st.integers(0, k))]
        chosen[b, : len(greedy)] = torch.tensor(greedy, dtype=torch.int32)
        keep.append(k)
        count.append(len(greedy))
    count = torch.tensor(count, dtype=torch.int32)
    got = fill_on_device(chosen, count, keep, valid, scores)
    padded = torch.where(torch.arange(n)[None] < count[:, None].long(), chosen.long(), -1)
    expected = host_fill(padded, keep, valid, scores)
    assert [g.tolist() for g in got] == [e.tolist() for e in expected]


def host_fill(chosen: torch.Tensor, keep: list[int], valid: torch.Tensor, score: torch.Tensor) -> list[torch.Tensor]:
    """Reference, one row at a time in Python: greedy picks, then the best unpicked valid items by score
    (NaN lowest), lowest index on ties; sorted."""
    out = []
    for b, k in enumerate(keep):
        picked = [int(i) for i in chosen[b] if i >= 0][:k]
        rest = [i for i in range(valid.shape[1]) if bool(valid[b, i]) and i not in picked]
        key = [float("-inf") if torch.isnan(score[b, i]) else float(score[b, i]) for i in rest]
        ranked = [i for _, i in sorted(zip(key, rest), key=lambda t: (-t[0], t[1]))]
        out.append(torch.tensor(sorted(picked + ranked[: k - len(picked)])))
    return out


@given(st.lists(st.booleans(), min_size=1, max_size=200))
def test_video_runs_equals_a_python_scan(bits):
    from prunekit.adapters.llava_onevision import video_runs

    expected: list[tuple[int, int]] = []
    for i, bit in enumerate(bits):
        if bit and expected and expected[-1][1] == i:
            expected[-1] = (expected[-1][0], i + 1)
        elif bit:
            expected.append((i, i + 1))
    assert video_runs(torch.tensor(bits)) == expected


def test_layout_to_moves_the_table_and_keeps_everything_else():
    from prunekit import VideoLayout

    layout = VideoLayout.contiguous(3, 2, (2, 2), 20, trailing_layout_tokens=1)
    assert layout.to("cpu") is layout
    moved = layout.to("meta")
    assert moved.token_index.device.type == "meta" and moved.grid == layout.grid
    assert moved.seq_len == layout.seq_len and torch.equal(moved.layout_index, layout.layout_index)
    assert layout.token_index.device.type == "cpu"


def test_pad_rows_equals_a_loop_of_slice_assignments() -> None:
    from prunekit.ops.nosync import pad_rows

    gen = torch.Generator().manual_seed(0)
    parts = [torch.randn(n, 3, generator=gen) for n in (4, 1, 7, 2)]
    padded, valid = pad_rows(parts, fill=-2.0)
    expected = torch.full((4, 7, 3), -2.0)
    mask = torch.zeros(4, 7, dtype=torch.bool)
    for b, part in enumerate(parts):
        expected[b, : part.shape[0]] = part
        mask[b, : part.shape[0]] = True
    assert torch.equal(padded, expected) and torch.equal(valid, mask)
    flat, flat_valid = pad_rows([torch.arange(3), torch.arange(5)], fill=9)
    assert flat.tolist() == [[0, 1, 2, 9, 9], [0, 1, 2, 3, 4]] and flat_valid.sum() == 8
    with pytest.raises(ValueError, match="no empty part"):
        pad_rows([torch.arange(2), torch.arange(0)])


def test_segment_of_frame_labels_every_frame_with_its_segment() -> None:
    from prunekit.types import Segments

    assert Segments((0, 3, 4, 9), 12).segment_of_frame().tolist() == [0, 0, 0, 1, 2, 2, 2, 2, 2, 3, 3, 3]
    assert Segments((0,), 5).segment_of_frame().tolist() == [0] * 5
