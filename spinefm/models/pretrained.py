"""Initial weights: a file the user names, or (for users with internet, opt-in) torchvision's weights by name.

`init_checkpoint: torchvision:MaskRCNN_ResNet50_FPN_Weights.COCO_V1` names the file torchvision
publishes for those weights, kept in torch's hub cache (`$TORCH_HOME/hub/checkpoints`): used from
there when present, fetched there otherwise. Offline, the error names the file to place.
"""

from __future__ import annotations

from pathlib import Path
from urllib.error import URLError
from urllib.parse import urlparse

import torch
import torchvision

TORCHVISION = "torchvision:"


def weights_file(name: str) -> Path:
    """The local file of an `init_checkpoint`: a path as given, or the cached file of a torchvision weight name."""
    if not str(name).startswith(TORCHVISION):
        return Path(name).expanduser()
    try:
        url = torchvision.models.get_weight(name[len(TORCHVISION) :]).url
    except (ValueError, KeyError) as error:
        raise ValueError(
            f"{name}: not a torchvision weight name such as torchvision:ResNet50_Weights.IMAGENET1K_V2 ({error})"
        ) from error
    path = Path(torch.hub.get_dir()) / "checkpoints" / Path(urlparse(url).path).name
    if not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            torch.hub.download_url_to_file(url, str(path))
        except (URLError, OSError) as error:
            raise FileNotFoundError(
                f"{name}: could not fetch {url} ({error}); without internet, place that file as {path}"
            ) from error
    return path
