"""Torch's threads around small work: limit_threads and iterate_loader."""
import torch

from gcalib.training.threads import iterate_loader, limit_threads


def test_limit_threads_restores_the_previous_number_also_after_an_error():
    before = torch.get_num_threads()
    try:
        with limit_threads(1):
            assert torch.get_num_threads() == 1
            raise KeyError
    except KeyError:
        pass
    assert torch.get_num_threads() == before
    with limit_threads(None):
        assert torch.get_num_threads() == before


def test_iterate_loader_loads_on_one_thread_and_gives_every_batch():
    seen = []

    class Recording(torch.utils.data.Dataset):
        def __len__(self):
            return 5

        def __getitem__(self, i):
            seen.append(torch.get_num_threads())
            return torch.tensor(i)

    before = torch.get_num_threads()
    batches = list(iterate_loader(torch.utils.data.DataLoader(Recording(), batch_size=2)))
    assert [b.tolist() for b in batches] == [[0, 1], [2, 3], [4]]
    assert seen == [1] * 5 and torch.get_num_threads() == before
