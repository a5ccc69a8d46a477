"""Data layer: robust image decoding, dataset readers/writers, built-in datasets.

Pure numpy / OpenCV / Pillow (no Keras). See `dataset.py` for the sample contract and
`errors.py` for the skip-versus-error policy.
"""

from kerascv_suite.data.builtin.digits import load_digits
from kerascv_suite.data.builtin.shapes import ShapesDataset, make_shapes
from kerascv_suite.data.dataset import Dataset, InMemoryDataset, RecordDataset, clean_boxes
from kerascv_suite.data.errors import (AnnotationError, BadImageError, DataError, SkipLog,
                                       UnsafePathError)
from kerascv_suite.data.formats.coco import read_coco, write_coco
from kerascv_suite.data.formats.folders import read_folders, write_folders
from kerascv_suite.data.formats.masks import read_mask_folder, write_mask_folder
from kerascv_suite.data.formats.voc import VOC_CLASSES, read_voc, write_voc
from kerascv_suite.data.formats.yolo import read_yolo, write_yolo
from kerascv_suite.data.image_io import (DEFAULT_MAX_PIXELS, decode_image, image_size,
                                         read_mask, resize_image, voc_palette, write_image,
                                         write_mask)
from kerascv_suite.data.io import FORMATS, convert, list_splits, read_dataset, write_dataset
from kerascv_suite.data.paths import safe_join
from kerascv_suite.data.rle import (mask_to_polygons, polygons_to_mask, rle_decode, rle_encode,
                                    segmentation_to_mask)
from kerascv_suite.data.augment import (PRESETS, AugmentConfig, Augmenter, build_augmenter,
                                        preset, sample_seed)
from kerascv_suite.data.loader import DataLoader, collate
