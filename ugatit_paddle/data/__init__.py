"""Training and test data: image folders (`images`, whose public names are re-exported here) and datasets
shipped as zip files (`archive`: safe extraction into a reused cache), and the lifetime of DataLoader worker
processes (`workers`: they end with the process that started them)."""

from .images import (
    IMAGE_EXTENSIONS,
    DOMAIN_FOLDERS,
    LAYOUT,
    RESIZE_MARGIN,
    DataError,
    BadImageWarning,
    DECODE_ERRORS,
    find_images,
    check_layout,
    load_rgb,
    to_rgb,
    to_chw,
    train_transform,
    eval_transform,
    epoch_permutation,
    augmentation_rng,
    StreamBatchSampler,
    ImageFolderDataset,
    build_train_loader,
    iter_test_batches,
)

__all__ = [
    "IMAGE_EXTENSIONS", "DOMAIN_FOLDERS", "LAYOUT", "RESIZE_MARGIN", "DataError", "BadImageWarning", "DECODE_ERRORS", "find_images", "check_layout", "load_rgb", "to_rgb", "to_chw", "train_transform", "eval_transform", "epoch_permutation", "augmentation_rng", "StreamBatchSampler", "ImageFolderDataset", "build_train_loader", "iter_test_batches",
]
