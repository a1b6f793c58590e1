"""Fine-tuning: objectives, torch augmentations and the training job (Qt-free).

    from explorer.finetune import FinetuneParams, finetune, save_finetuned
"""

from explorer.finetune.augment import ImageAugment, VectorAugment, augment_images, augment_vectors
from explorer.finetune.job import (FinetuneParams, FinetuneResult, finetune, probe_metrics,
                                   save_finetuned, trainable_blocks)
from explorer.finetune.objectives import OBJECTIVES, Projector

__all__ = ["FinetuneParams", "FinetuneResult", "finetune", "save_finetuned", "probe_metrics",
           "trainable_blocks", "OBJECTIVES", "Projector", "ImageAugment", "VectorAugment",
           "augment_images", "augment_vectors"]
