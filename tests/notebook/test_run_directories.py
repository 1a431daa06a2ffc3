"""Run directories: the digest tracks what changes a run's numbers, so a finished run is loaded, not retrained."""
import dataclasses

import pytest
import torch

from gcalib.notebook import run_directories
from gcalib.training.trainer import PretrainConfig, pretrain


def test_digest_ignores_resume_free_fields_and_tracks_everything_else():
    config = PretrainConfig(epochs=3, progress=False)
    same = dataclasses.replace(config, progress=True, out_dir="/tmp/elsewhere", device="cpu", resume=False,
                               checkpoint_every=5, evaluate=False)
    assert run_directories.config_digest(config) == run_directories.config_digest(same)
    for change in ({"epochs": 4}, {"loss": "gca_uot"}, {"loss_params": {"eps": 0.2}}, {"seed": 1},
                   {"augmentation": "large_erase"}, {"batch_size": 64}):
        assert run_directories.config_digest(dataclasses.replace(config, **change)) != run_directories.config_digest(config), change
    assert len(run_directories.config_digest(config, length=16)) == 16
    with pytest.raises(TypeError, match="config must be a PretrainConfig"):
        run_directories.config_digest({"epochs": 3})
    with pytest.raises(ValueError, match="length must be"):
        run_directories.config_digest(config, length=0)


def test_run_directory_names_the_run_and_appends_the_digest(tmp_path):
    config = PretrainConfig(loss="gca_uot")
    path = run_directories.run_directory(tmp_path, config)
    assert path.parent == tmp_path
    assert path.name == f"digits-small_cnn-gca_uot-{run_directories.config_digest(config)}"
    assert not path.exists()
    byol = PretrainConfig(loss="byol")
    assert run_directories.run_directory(tmp_path, byol).name.startswith("digits-small_cnn-byol-")
    assert run_directories.run_directory(str(tmp_path), config, name="mine").name.startswith("mine-")
    with pytest.raises(ValueError, match="name must be"):
        run_directories.run_directory(tmp_path, config, name="../escape")
    with pytest.raises(TypeError, match="root must be a path"):
        run_directories.run_directory(3, config)
    with pytest.raises(TypeError, match="config must be a PretrainConfig"):
        run_directories.run_directory(tmp_path, {"dataset": "digits"})


def test_a_finished_run_in_its_directory_is_loaded_not_retrained(tmp_path):
    config = PretrainConfig(max_train_samples=48, batch_size=16, epochs=1, warmup_epochs=0, workers=0,
                            projector_hidden_dim=32, evaluate=False, progress=False)
    where = run_directories.run_directory(tmp_path, config)
    first = pretrain(dataclasses.replace(config, out_dir=str(where), resume=True))
    again = pretrain(dataclasses.replace(config, out_dir=str(where), resume=True))
    assert again.history == first.history and len(again.history) == 1
    for (name, a), (_, b) in zip(first.encoder.state_dict().items(), again.encoder.state_dict().items()):
        assert torch.equal(a, b), name


def test_a_dataset_object_is_identified_by_its_data_not_its_repr(tmp_path, scenes):
    config = PretrainConfig(dataset=scenes(), evaluate=False)
    renamed = scenes()
    renamed.name = "my scenes/v2"
    assert repr(renamed) != repr(config.dataset)
    digest = run_directories.config_digest(config)
    assert run_directories.config_digest(PretrainConfig(dataset=renamed, evaluate=False)) == digest
    assert run_directories.config_digest(PretrainConfig(dataset=scenes(seed=1), evaluate=False)) != digest
    evaluated = PretrainConfig(dataset=scenes(), test_dataset=scenes(n=6, seed=2))
    assert run_directories.config_digest(dataclasses.replace(evaluated, test_dataset=scenes(n=6, seed=3))) != \
        run_directories.config_digest(evaluated)
    assert run_directories.run_directory(tmp_path, config).name == f"custom-small_cnn-infonce-{digest}"
    named = run_directories.run_directory(tmp_path, PretrainConfig(dataset=renamed, evaluate=False))
    assert named.name == f"my_scenes_v2-small_cnn-infonce-{digest}"


def test_a_plain_map_style_dataset_is_fingerprinted_by_its_items(tmp_path, scenes):
    data = scenes()
    items = [data[i] for i in range(len(data))]
    config = PretrainConfig(dataset=items, evaluate=False)
    digest = run_directories.config_digest(config)
    assert run_directories.config_digest(PretrainConfig(dataset=list(items), evaluate=False)) == digest
    changed = [(255 - items[0][0], *items[0][1:]), *items[1:]]
    assert run_directories.config_digest(PretrainConfig(dataset=changed, evaluate=False)) != digest
    assert run_directories.run_directory(tmp_path, config).name == f"list-small_cnn-infonce-{digest}"
