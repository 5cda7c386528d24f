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

from spinefm.errors import reason
from spinefm.state_dicts import key_mismatch

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


def state_dict_in(loaded) -> dict:
    """The weights in a loaded file: a plain state dict, a torchvision-reference checkpoint ({'model': ...})
    or a stage's checkpoint (train.py's or `spinefm.original`'s: {'state_dict': {'model.<key>': ...}})."""
    if not isinstance(loaded, dict):
        raise ValueError(f"expected a state dict, got {type(loaded).__name__}")
    if isinstance(loaded.get("state_dict"), dict):
        return {k.removeprefix("model."): v for k, v in loaded["state_dict"].items()}
    if isinstance(loaded.get("model"), dict):
        return loaded["model"]
    return loaded


def init_weights(path, own: dict, subset: bool = False) -> dict:
    """The weights of an `init_checkpoint` file for a model whose state dict is `own`; a ValueError
    names the file and the keys that do not fit. subset: the file may hold only some of the keys (a
    Med-SA checkpoint holds what it trained)."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"init_checkpoint {path} not found; name an existing file or set it to null")
    try:
        state = state_dict_in(torch.load(path, map_location="cpu", weights_only=True))
    except Exception as error:  # torch raises many kinds for a damaged or foreign file
        why = reason(error, first_sentence=True)
        raise ValueError(f"init_checkpoint {path} cannot be read as weights ({why})") from error
    mismatch = key_mismatch({k: v for k, v in own.items() if not subset or k in state}, state)
    if mismatch:
        raise ValueError(
            f"init_checkpoint {path} does not fit the model this config builds: {mismatch}; "
            "build the stage's model as the checkpoint's"
        )
    return state
