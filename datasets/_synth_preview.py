"""A picture of the synthetic videos for people: a grid of ``synth-vox`` frames over time with each
frame's active AUs (``ssfbench synth preview``)."""

from __future__ import annotations

from pathlib import Path

from ssfbench.datasets._synth_dynamics import FPS
from ssfbench.datasets._synth_render import AUS
from ssfbench.datasets.synthetic import THRESHOLD, SynthVox
from ssfbench.runtime.fileio import atomic_savefig


def preview_grid(out: Path, *, videos: int = 6, times: int = 10, image_size: int = 96, seed: int = 0,
                 stride: int = 5) -> Path:
    """Write a PNG grid of synth-vox frames (rows = videos of different identities, columns = every
    ``stride``-th frame) with each frame's active AUs (intensity >= 2) printed under it."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = Path(out)
    ds = SynthVox.open(image_size=image_size, seed=seed, identities=videos)
    frames = [min(i * stride, ds.frames - 1) for i in range(times)]
    fig, axes = plt.subplots(videos, times, figsize=(times * 1.05, videos * 1.2), squeeze=False)
    for r in range(videos):
        video = r * ds.videos_per_identity
        imgs, au = ds.read_frames(video, frames), ds.intensities(video)[frames]
        for c, (img, a) in enumerate(zip(imgs, au)):
            ax = axes[r, c]
            ax.imshow(img)
            ax.set_xticks([]), ax.set_yticks([])
            active = " ".join(str(x) for x, on in zip(AUS, a >= THRESHOLD) if on)
            ax.set_xlabel(active or "-", fontsize=5.5, labelpad=1)
            if r == 0:
                ax.set_title(f"t={frames[c] / FPS:.1f}s", fontsize=6)
        axes[r, 0].set_ylabel(ds.identity(video), fontsize=6)
    fig.suptitle(f"synth-vox (seed {seed}): active AUs (intensity >= {THRESHOLD:g}) under each frame", fontsize=7)
    fig.tight_layout(pad=0.3)
    try:
        atomic_savefig(fig, out, dpi=110)
    finally:
        plt.close(fig)
    return out
