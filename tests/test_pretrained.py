"""torchvision weight names as init_checkpoint: read from torch's hub cache, never downloaded in tests;
offline, the error names the file to place."""

from urllib.error import URLError

import pytest
import torch
import torchvision

from spinefm.models.pretrained import weights_file
from spinefm.models.spine_end import SpineEndClassifier

NAME = "torchvision:ResNet18_Weights.IMAGENET1K_V1"


@pytest.fixture
def offline(monkeypatch, tmp_path):
    """An empty torch home, and a network that fails like one without internet."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))

    def no_network(url, path, *args, **kwargs):
        raise URLError("no internet")

    monkeypatch.setattr(torch.hub, "download_url_to_file", no_network)
    return tmp_path / "torch" / "hub" / "checkpoints" / "resnet18-f37072fd.pth"


def test_a_weight_name_loads_the_file_placed_in_the_hub_cache(offline):
    placed = torchvision.models.resnet18(weights=None).state_dict()
    offline.parent.mkdir(parents=True)
    torch.save(placed, offline)
    assert weights_file(NAME) == offline
    model = SpineEndClassifier(arch="resnet18", num_classes=4, in_channels=1, init_checkpoint=NAME)
    own = model.net.state_dict()
    assert torch.equal(own["layer1.0.conv1.weight"], placed["layer1.0.conv1.weight"])
    assert torch.equal(own["conv1.weight"], placed["conv1.weight"].sum(dim=1, keepdim=True))  # grey input


def test_offline_the_error_names_the_file_to_place(offline):
    with pytest.raises(FileNotFoundError, match=f"place that file as {offline}"):
        weights_file(NAME)
    with pytest.raises(ValueError, match="not a torchvision weight name"):
        weights_file("torchvision:NoSuch_Weights.V1")


def test_a_plain_path_is_taken_as_given(tmp_path):
    assert weights_file(str(tmp_path / "w.pth")) == tmp_path / "w.pth"
