"""Every random stream of the harness, named in one place.

A *stream* is the salt (or multiplier) that keeps one use of randomness apart from every other use
of the same seed: ``np.random.default_rng([seed, STREAM, ...])`` never draws the numbers another
stream draws. Checkpoints, caches, result files and their fingerprints depend on these VALUES; a
changed value is a different benchmark (a new ``protocol_version``, a new ``SYNTH_VERSION``).
Two streams may share a value when they never meet in one generator (``VIDEO_SPLIT`` and
``SYNTH_WORLD`` are both 7919: one is the second key of a split generator, the other the first
key of every synthetic generator).

========================  ===========  ===============================================================
name                      value        what it seeds (where)
========================  ===========  ===============================================================
``VIDEO_SPLIT``           7919         the 80/20 video-level split of the pretraining videos:
                                       ``default_rng([seed, VIDEO_SPLIT])`` (``windows.split_videos``)
``VALIDATION_WINDOWS``    104729       the fixed held-out window of each validation video:
                                       ``default_rng([seed, VALIDATION_WINDOWS, video])``
                                       (``windows.validation_windows``)
``CROP_JITTER``           1_000_003    the crop jitter of one training step, pretraining and label
                                       training alike: ``torch.Generator().manual_seed(seed *
                                       CROP_JITTER + step + rank * CROP_JITTER_RANK)``
                                       (``training.jitter_generator``)
``CROP_JITTER_RANK``      2**40        keeps the jitter of the ranks of a torchrun apart (rank 0: the
                                       single-process stream)
``FINETUNE_ROWS``         31337        the rows of one label-training step:
                                       ``default_rng([seed, FINETUNE_ROWS, step])``
                                       (``finetune.step_rows``)
``BATCHNORM_DRAW``        0xB4         the frames BatchNorm statistics of an untrained encoder are
                                       estimated on: ``default_rng([seed, BATCHNORM_DRAW])``
                                       (``batchnorm.draw_frames``; recorded as ``stream``)
``AUDIT_WINDOWS``         0xA0D1       the windows of the pretext audit:
                                       ``default_rng([seed, AUDIT_WINDOWS, k, video])``
                                       (``audit.audit_windows``)
``FIXED_ANCHORS``         567          the one window of each training video with ``anchor=fixed``:
                                       ``default_rng([seed, FIXED_ANCHORS, video])``
                                       (``windows.WindowBatches``; 567 is the released code's
                                       ``np.random.seed``)
``VALIDATION_CROPS``      0xC0         the crops of the held-out windows with ``framing=released``:
                                       ``default_rng([seed, VALIDATION_CROPS])`` seeds a torch
                                       generator (``pretrain.validate``), the same every epoch
``SYNTH_WORLD``           7919         first key of every generator of the synthetic benchmark:
                                       ``default_rng([SYNTH_WORLD, dataset, seed, part, ...])``
                                       (``datasets._synth_render.synth_rng``)
``SYNTH_VOX``             101          dataset key of ``synth-vox`` (identities of different synthetic
``SYNTH_AU``              202          datasets never share a generator)
``SYNTH_EXPR``            303
``SYNTH_IDENTITY``        1            part key: one person's face (``[.., seed, SYNTH_IDENTITY, person]``)
``SYNTH_VIDEO``           2            part key: one video's scene and trajectories (``[.., video]``)
``SYNTH_NOISE``           3            part key: sensor noise of one frame (``[.., video, frame]``)
``SYNTH_FOLDS``           4            part key: the subject permutation of the folds
``SYNTH_IMAGE``           5            part key: one still of ``synth-expr`` (``[.., person, image]``)
========================  ===========  ===============================================================

Streams without a salt: the window stream of pretraining (``default_rng([seed, epoch])`` orders an
epoch's videos, ``default_rng([seed, epoch, video])`` draws a video's anchor and offsets;
``windows.WindowBatches``); ``torch.manual_seed(seed)`` before a method is built (its initial
weights) and at the start of pretraining and label training; the probe's
``torch.Generator().manual_seed(seed)``.
"""

from __future__ import annotations

VIDEO_SPLIT = 7919
VALIDATION_WINDOWS = 104729
CROP_JITTER = 1_000_003
CROP_JITTER_RANK = 2**40
FINETUNE_ROWS = 31337
BATCHNORM_DRAW = 0xB4
AUDIT_WINDOWS = 0xA0D1
FIXED_ANCHORS = 567
VALIDATION_CROPS = 0xC0

SYNTH_WORLD = 7919
SYNTH_VOX, SYNTH_AU, SYNTH_EXPR = 101, 202, 303
SYNTH_IDENTITY, SYNTH_VIDEO, SYNTH_NOISE, SYNTH_FOLDS, SYNTH_IMAGE = 1, 2, 3, 4, 5


def crop_jitter_seed(seed: int, step: int, rank: int = 0) -> int:
    """The seed of the crop-jitter generator of training step ``step`` on rank ``rank``."""
    return seed * CROP_JITTER + step + rank * CROP_JITTER_RANK


__all__ = ["VIDEO_SPLIT", "VALIDATION_WINDOWS", "CROP_JITTER", "CROP_JITTER_RANK", "FINETUNE_ROWS",
           "BATCHNORM_DRAW", "AUDIT_WINDOWS", "FIXED_ANCHORS", "VALIDATION_CROPS", "SYNTH_WORLD", "SYNTH_VOX", "SYNTH_AU", "SYNTH_EXPR",
           "SYNTH_IDENTITY", "SYNTH_VIDEO", "SYNTH_NOISE", "SYNTH_FOLDS", "SYNTH_IMAGE", "crop_jitter_seed"]
