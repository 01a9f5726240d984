"""The released ranking code's framing (``framing=released``), on tensors.

The authors' ``train/triplet_rank_train.py`` (github.com/ihp-lab/temporal-consistency) applies to
every image, at training and at validation time::

    Resize((256, 256)), Pad(24), CenterCrop(224), RandomCrop(c), Resize((256, 256)), ToTensor, Normalize

with ``c = np.random.RandomState(seed).randint(200, 224)`` drawn once per run (their seed 123 gives
213). ``Pad(24)`` makes the frame 304 px and ``CenterCrop(224)`` starts 40 px in, so the padding is
never seen: the crop is taken from the central 224 px of the 256 px frame, which starts
:data:`CENTER_OFFSET` = 16 px from its edges, at a position ``(i, j)`` drawn per image as
torchvision's ``RandomCrop.get_params`` draws it (``randint(0, 224 - c + 1)``, rows first).

:func:`crop_side` and :func:`crop_boxes` give the same side and boxes as that pipeline given the same
random numbers; :func:`frame_released` applies them to uint8 frames (bilinear resizes with
antialiasing, as :class:`ssfbench.api.preprocess.Preprocess` does, instead of PIL's: the boxes are
equal, the pixels equal to resampling precision).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from ssfbench.api.preprocess import Preprocess

#: the side every frame is resized to first (and the crop is resized back to, at 256 px input)
FRAME = 256
#: ``Pad(24)`` on every side
PAD = 24
#: ``CenterCrop(224)`` of the padded frame
CENTER = 224
#: where the centre crop starts in the unpadded frame: (256 + 2 * 24 - 224) / 2 - 24
CENTER_OFFSET = (FRAME + 2 * PAD - CENTER) // 2 - PAD
#: the crop side is drawn from ``[SIDE_LOW, CENTER)``
SIDE_LOW = 200


def crop_side(seed: int) -> int:
    """The run's one crop side in pixels of the 256 px frame: ``RandomState(seed).randint(200, 224)``,
    the released code's draw (``--seed 123``, their default, gives 213)."""
    return int(np.random.RandomState(seed).randint(SIDE_LOW, CENTER))


def crop_boxes(n: int, side: int, generator: torch.Generator) -> torch.Tensor:
    """``[n, 2]`` (top, left) of ``n`` crops of ``side`` px in the 256 px frame, one per image, drawn
    as torchvision's ``RandomCrop(side).get_params`` draws them inside the central 224 px (two
    ``torch.randint(0, 224 - side + 1)`` per image, top first)."""
    out = torch.empty(n, 2, dtype=torch.long)
    for row in range(n):
        out[row, 0] = int(torch.randint(0, CENTER - side + 1, size=(1,), generator=generator))
        out[row, 1] = int(torch.randint(0, CENTER - side + 1, size=(1,), generator=generator))
    return out + CENTER_OFFSET


def frame_released(frames: torch.Tensor, preprocess: Preprocess, side: int, generator: torch.Generator) -> torch.Tensor:
    """uint8 frames ``[..., H, W, 3]`` -> float ``[..., 3, S, S]``: each resized to 256 px, a crop of
    ``side`` px at a box from :func:`crop_boxes` (one per image, drawn from ``generator``), resized to
    ``preprocess.input_size`` and normalised with ``preprocess``'s mean and std (its ``center_crop``
    is not used: the box is already inside the central 224 px)."""
    lead = frames.shape[:-3]
    full = Preprocess(input_size=FRAME, mean=preprocess.mean, std=preprocess.std)(frames.reshape(-1, *frames.shape[-3:]))
    boxes = crop_boxes(full.shape[0], side, generator).tolist()
    crops = torch.stack([full[i, :, top:top + side, left:left + side] for i, (top, left) in enumerate(boxes)])
    size = preprocess.input_size
    if side != size:
        crops = F.interpolate(crops, size=(size, size), mode="bilinear", align_corners=False, antialias=True)
    return crops.reshape(*lead, 3, size, size)


__all__ = ["CENTER", "CENTER_OFFSET", "FRAME", "PAD", "SIDE_LOW", "crop_boxes", "crop_side", "frame_released"]
