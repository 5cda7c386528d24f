"""A tiny Mask R-CNN (64 px, narrow heads) and its inference settings, for fast tests."""

TINY = {
    "backbone": "tiny",
    "min_size": 64,
    "max_size": 64,
    "fpn_channels": 16,
    "box_representation_size": 32,
    "mask_head_channels": [16],
    "mask_predictor_channels": 16,
}
INFERENCE = {"image_size": 64, "score_threshold": 0.6, "mask_threshold": 0.9, "class_mode": "single"}
