"""Scoring the embeddings on the held-out (node, day) fold: retrieval, kNN probes, clusters, a projection.

Embeddings are computed batch by batch from the memory maps (``sage.evaluation.batch_size``
captures at a time) into preallocated float32 arrays, so memory holds one image batch plus
n x (2 F + 2 E) floats (F: backbone width, E: expander width; 100,000 test captures with
ResNet-18 and the default expander: 0.8 GB).

Which space for what:

- **Retrieval (RGB -> thermal) uses the expander embeddings.** The two branches are separate
  networks, so their backbone representations live in unrelated coordinates; the expander
  output is the only space where the invariance term pulls a capture's RGB and thermal
  views together. Distances are Euclidean, the distance the invariance term minimises.
- **Probes and clusters use the backbone representations** of each modality, as VICReg's
  authors evaluate (the representation before the expander transfers better); each
  modality is probed on its own, so the figures say what the RGB and the thermal network
  each learnt.

Metrics (``metrics.json``):

- ``retrieval``: test pairs shuffled (seeded) into pools of ``retrieval_pairs``; for every
  RGB capture of a pool, the rank of its own thermal capture among the pool's thermal
  captures by distance; ``top1``/``top5``: share of queries whose partner ranks first / in
  the first five, averaged over pools; ``chance_top1`` = 1/N, ``chance_top5`` = 5/N.
- ``probes.<modality>``: k-nearest-neighbour regression of the cloud fraction (sky-pointing
  captures only; ``cloud_fraction_r2``, ``cloud_fraction_mae``) and classification of day
  vs night (``day_night_accuracy``), fitted on training-fold representations (at most
  ``PROBE_TRAIN`` captures) and scored on the test fold; ``probes.reference`` holds what
  knowing no image gives (MAE of the training mean, majority-class accuracy).
- ``clusters.<modality>``: silhouette (-1 to 1, higher is better separated) of k-means with
  ``clusters`` clusters on at most ``CLUSTER_SAMPLE`` test representations.

Figures: ``projection.png`` (t-SNE of at most ``PROJECTION_SAMPLE`` test representations per
modality, coloured by cloud fraction and by day/night) and ``retrieval.png`` (top-k
retrieval against chance, and the thermal probe's cloud fraction against the truth).
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, NamedTuple

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import torch  # noqa: E402
from sklearn.cluster import KMeans  # noqa: E402
from sklearn.decomposition import PCA  # noqa: E402
from sklearn.manifold import TSNE  # noqa: E402
from sklearn.metrics import mean_absolute_error, r2_score, silhouette_score  # noqa: E402
from sklearn.neighbors import KNeighborsClassifier, KNeighborsRegressor  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402

from hpcml.core import headline  # noqa: E402
from hpcml.core.atomic import write_json  # noqa: E402
from hpcml.core.figures import save_figure  # noqa: E402
from hpcml.core.training import best_checkpoint  # noqa: E402
from hpcml.sage.dataset import RGB_SCALE, SageData, Standardise, load_splits  # noqa: E402
from hpcml.sage.model import TwoBranchVICReg  # noqa: E402

log = logging.getLogger(__name__)
MODALITIES = ("rgb", "thermal")
PROBE_TRAIN = 20_000
CLUSTER_SAMPLE = 10_000
SILHOUETTE_SAMPLE = 5_000
PROJECTION_SAMPLE = 2_000
TOP_K = 20


class Embeddings(NamedTuple):
    """Per capture (rows in sorted order): backbone representations and expander embeddings."""

    rows: np.ndarray
    rgb: np.ndarray
    thermal: np.ndarray
    rgb_embedding: np.ndarray
    thermal_embedding: np.ndarray


def _device(accelerator: str) -> torch.device:
    if accelerator == "gpu" and not torch.cuda.is_available():
        raise RuntimeError("training.accelerator is gpu but no CUDA device is visible; run on a GPU node or set training.accelerator=auto")
    return torch.device("cuda" if accelerator != "cpu" and torch.cuda.is_available() else "cpu")


@torch.no_grad()
def embed(module: TwoBranchVICReg, data: SageData, rows: np.ndarray, batch_size: int) -> Embeddings:
    """Representations and embeddings of ``rows``, streamed from the memory maps ``batch_size`` at a time."""
    rows = np.sort(np.asarray(rows, dtype=np.int64))
    thermal_scale = Standardise(module.hparams.thermal_mean, module.hparams.thermal_std)
    widths = (module.rgb.features, module.thermal.features, module.hparams.expander[-1], module.hparams.expander[-1])
    outputs = [np.empty((len(rows), w), dtype=np.float32) for w in widths]
    for a in range(0, len(rows), batch_size):
        take = rows[a:a + batch_size]
        rgb = RGB_SCALE(torch.from_numpy(np.ascontiguousarray(data.arrays["rgb"][take])).to(module.device))
        thermal = thermal_scale(torch.from_numpy(np.ascontiguousarray(data.arrays["thermal"][take])).to(module.device))
        for target, value in zip(outputs, module(rgb, thermal)):
            target[a:a + len(take)] = value.float().cpu().numpy()
    return Embeddings(rows, *outputs)


def retrieval(query: np.ndarray, candidates: np.ndarray, pool_size: int, seed: int) -> dict[str, Any]:
    """RGB -> thermal retrieval among pools of ``pool_size`` pairs (one smaller pool when the test fold is smaller)."""
    n = len(query)
    size = min(pool_size, n)
    order = np.random.default_rng(seed).permutation(n)
    pools = order[: n // size * size].reshape(-1, size)
    ranks = []
    for pool in pools:
        q, c = torch.from_numpy(query[pool]).double(), torch.from_numpy(candidates[pool]).double()
        distance = torch.cdist(q, c)
        ranks.append((distance < distance.diagonal()[:, None]).sum(1).numpy())
    ranks = np.stack(ranks)
    curve = [float((ranks < k).mean()) for k in range(1, min(TOP_K, size) + 1)]
    return {
        "top1": float((ranks < 1).mean()), "top5": float((ranks < 5).mean()),
        "chance_top1": 1 / size, "chance_top5": min(5, size) / size,
        "top1_over_chance": float((ranks < 1).mean() * size),
        "median_rank": float(np.median(ranks) + 1),
        "pool_size": int(size), "n_pools": int(len(pools)),
        "top_k_curve": curve,
        "space": "expander embeddings, Euclidean distance",
    }


def probes(train: Embeddings, test: Embeddings, index: pd.DataFrame, k: int) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """kNN probes per modality, and the test predictions of the cloud fraction (for the figure)."""
    labels = {name: index.iloc[e.rows] for name, e in (("train", train), ("test", test))}
    sky = {name: (frame.sky_pointing.to_numpy(bool) & np.isfinite(frame.cloud_fraction.to_numpy(float))) for name, frame in labels.items()}
    cloud = {name: frame.cloud_fraction.to_numpy(float) for name, frame in labels.items()}
    day = {name: frame.is_day.to_numpy(bool) for name, frame in labels.items()}
    out: dict[str, Any] = {}
    predicted: dict[str, np.ndarray] = {}
    for modality in MODALITIES:
        scaler = StandardScaler().fit(getattr(train, modality))
        x = {name: scaler.transform(getattr(e, modality)) for name, e in (("train", train), ("test", test))}
        scores: dict[str, Any] = {"cloud_fraction_r2": None, "cloud_fraction_mae": None}
        if sky["train"].sum() and sky["test"].sum():
            reg = KNeighborsRegressor(n_neighbors=min(k, int(sky["train"].sum()))).fit(x["train"][sky["train"]], cloud["train"][sky["train"]])
            predicted[modality] = reg.predict(x["test"][sky["test"]])
            truth = cloud["test"][sky["test"]]
            scores["cloud_fraction_r2"] = float(r2_score(truth, predicted[modality])) if len(truth) > 1 else None
            scores["cloud_fraction_mae"] = float(mean_absolute_error(truth, predicted[modality]))
        knn = KNeighborsClassifier(n_neighbors=min(k, len(x["train"]))).fit(x["train"], day["train"])
        scores["day_night_accuracy"] = float((knn.predict(x["test"]) == day["test"]).mean())
        out[modality] = scores
    majority = day["train"].mean() >= 0.5
    out["reference"] = {
        "cloud_fraction_mae": float(np.abs(cloud["test"][sky["test"]] - cloud["train"][sky["train"]].mean()).mean()) if sky["test"].sum() and sky["train"].sum() else None,
        "day_night_accuracy": float((day["test"] == majority).mean()),
        "what": "no image: the training mean cloud fraction, the training majority of day/night",
    }
    out.update(k=k, n_train=int(len(train.rows)), n_test=int(len(test.rows)), n_test_sky=int(sky["test"].sum()),
               space="backbone representations, standardised on the training fold")
    predicted["truth"] = cloud["test"][sky["test"]]
    return out, predicted


def clusters(test: Embeddings, n_clusters: int, seed: int) -> dict[str, Any]:
    """Silhouette of k-means clusters of each modality's representations (bounded subsample)."""
    rng = np.random.default_rng(seed)
    take = rng.permutation(len(test.rows))[:CLUSTER_SAMPLE]
    out: dict[str, Any] = {"k": n_clusters, "n": int(len(take))}
    for modality in MODALITIES:
        x = StandardScaler().fit_transform(getattr(test, modality)[take])
        if len(x) <= n_clusters:
            out[f"silhouette_{modality}"] = None
            continue
        labels = KMeans(n_clusters=n_clusters, n_init=4, random_state=seed).fit_predict(x)
        single = len(np.unique(labels)) < 2
        out[f"silhouette_{modality}"] = None if single else float(silhouette_score(x, labels, sample_size=min(SILHOUETTE_SAMPLE, len(x)), random_state=seed))
    return out


def projection_figure(test: Embeddings, index: pd.DataFrame, path: Path, seed: int) -> None:
    take = np.sort(np.random.default_rng(seed).permutation(len(test.rows))[:PROJECTION_SAMPLE])
    labels = index.iloc[test.rows[take]]
    fig, axes = plt.subplots(2, 2, figsize=(9, 8), squeeze=False)
    for row, modality in enumerate(MODALITIES):
        x = StandardScaler().fit_transform(getattr(test, modality)[take])
        x = PCA(n_components=min(50, *x.shape), random_state=seed).fit_transform(x)
        if len(x) > 5:
            xy = TSNE(n_components=2, perplexity=min(30.0, (len(x) - 1) / 3), init="pca", random_state=seed).fit_transform(x)
        else:
            xy = np.pad(x[:, :2], ((0, 0), (0, max(0, 2 - x.shape[1]))))
        cloud = axes[row, 0].scatter(xy[:, 0], xy[:, 1], c=labels.cloud_fraction.to_numpy(float), s=6, cmap="viridis", vmin=0, vmax=1)
        fig.colorbar(cloud, ax=axes[row, 0], label="cloud fraction")
        day = labels.is_day.to_numpy(bool)
        for flag, colour, name in ((True, "tab:orange", "day"), (False, "tab:blue", "night")):
            axes[row, 1].scatter(xy[day == flag, 0], xy[day == flag, 1], s=6, c=colour, label=name)
        axes[row, 1].legend(loc="best", markerscale=2)
        for ax in axes[row]:
            ax.set_title(f"{modality} representation (t-SNE)")
            ax.set_xticks([])
            ax.set_yticks([])
    fig.tight_layout()
    save_figure(fig, path)


def retrieval_figure(scores: dict[str, Any], predicted: dict[str, np.ndarray], path: Path) -> None:
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    curve = scores["top_k_curve"]
    k = np.arange(1, len(curve) + 1)
    left.plot(k, curve, "o-", label="VICReg (expander embeddings)")
    left.plot(k, k / scores["pool_size"], "--", color="grey", label="chance")
    left.set_xlabel("k")
    left.set_ylabel("RGB -> thermal top-k")
    left.set_title(f"retrieval among {scores['pool_size']} test pairs ({scores['n_pools']} pools)")
    left.set_ylim(0, 1)
    left.legend(loc="best")
    if "thermal" in predicted:
        right.scatter(predicted["truth"], predicted["thermal"], s=6, alpha=0.6)
        right.plot([0, 1], [0, 1], "--", color="grey")
        right.set_xlabel("cloud fraction (thermal threshold)")
        right.set_ylabel("kNN prediction from the thermal representation")
    else:
        right.text(0.5, 0.5, "no sky-pointing test captures", ha="center", va="center")
    right.set_title("cloud-fraction probe, test fold")
    fig.tight_layout()
    save_figure(fig, path)


def evaluate(data: Path, folds: Path, model: Path, out: Path, config: dict[str, Any]) -> dict[str, Any]:
    """Embed the test fold (and a bounded sample of the training fold for the probes) with the
    best checkpoint in ``model``; write ``metrics.json``, ``projection.png`` and ``retrieval.png`` to ``out``."""
    settings, seed, out = config["sage"]["evaluation"], config["seed"], Path(out)
    sage = SageData(data)
    splits = load_splits(sage, folds, config["sage"]["splits"])
    if len(splits["test"]) < 2:
        raise ValueError(f"the test fold holds {len(splits['test'])} captures; evaluation needs at least 2: add captures or days, or change sage.splits")
    checkpoint = best_checkpoint(model)
    if not checkpoint.exists():
        raise FileNotFoundError(f"no checkpoint in {Path(model) / 'checkpoints'}: run 'hpcml sage train' into {model} first")
    module = TwoBranchVICReg.load_from_checkpoint(checkpoint, map_location=_device(config["training"]["accelerator"])).eval()
    if module.hparams.rgb_channels != sage.rgb_channels:
        raise ValueError(f"the model reads {module.hparams.rgb_channels}-channel RGB but {data} holds {sage.rgb_channels}: "
                         "retrain on these arrays or evaluate on the arrays it was trained on")
    rng = np.random.default_rng(seed)
    probe_rows = splits["train"] if len(splits["train"]) <= PROBE_TRAIN else rng.choice(splits["train"], PROBE_TRAIN, replace=False)
    test = embed(module, sage, splits["test"], settings["batch_size"])
    train = embed(module, sage, probe_rows, settings["batch_size"])
    found = retrieval(test.rgb_embedding, test.thermal_embedding, settings["retrieval_pairs"], seed)
    probe_scores, predicted = probes(train, test, sage.index, settings["knn"])
    metrics = {
        "retrieval": found,
        "probes": probe_scores,
        "clusters": clusters(test, settings["clusters"], seed),
        "n_test": int(len(test.rows)),
        "checkpoint": str(checkpoint),
        "device": str(module.device),
    }
    metrics[headline.KEY] = _headline(found, probe_scores)
    out.mkdir(parents=True, exist_ok=True)
    projection_figure(test, sage.index, out / "projection.png", seed)
    retrieval_figure(found, predicted, out / "retrieval.png")
    write_json(out / "metrics.json", metrics)
    log.info("RGB -> thermal top-1 %.3f (chance %.4f, %.1fx) among %d pairs; thermal cloud-fraction R2 %s",
             found["top1"], found["chance_top1"], found["top1_over_chance"], found["pool_size"], probe_scores["thermal"]["cloud_fraction_r2"])
    return metrics


def _headline(found: dict[str, Any], probe_scores: dict[str, Any]) -> list[dict[str, Any]]:
    """Retrieval against chance, and the probes against the no-image reference (the baselines)."""
    reference = probe_scores["reference"]
    scores = {
        "chance / no image": {"RGB->thermal top-1": found["chance_top1"], "RGB->thermal top-5": found["chance_top5"],
                              "cloud fraction MAE (kNN)": reference["cloud_fraction_mae"], "day/night accuracy (kNN)": reference["day_night_accuracy"]},
        "vicreg (thermal branch)": {"cloud fraction MAE (kNN)": probe_scores["thermal"]["cloud_fraction_mae"],
                                    "day/night accuracy (kNN)": probe_scores["thermal"]["day_night_accuracy"]},
        "vicreg (RGB branch)": {"RGB->thermal top-1": found["top1"], "RGB->thermal top-5": found["top5"],
                                "cloud fraction MAE (kNN)": probe_scores["rgb"]["cloud_fraction_mae"],
                                "day/night accuracy (kNN)": probe_scores["rgb"]["day_night_accuracy"]},
    }
    better = {"RGB->thermal top-1": "higher", "RGB->thermal top-5": "higher", "cloud fraction MAE (kNN)": "lower", "day/night accuracy (kNN)": "higher"}
    return headline.rows("sage", scores, better, baselines=("chance / no image",))
