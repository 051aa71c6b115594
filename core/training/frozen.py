"""Frozen-trunk training (``--freeze-trunk``): the ResNet-22 trunk's early stages run once per cached window,
and only the rest of the network is trained on their outputs.

DMV: the heads (and the last ``--unfreeze-stages`` stages of both columns) on cached outputs of the frozen
column prefixes (:func:`train_dmv_top`). GMIC: the saliency layer, local network and fusion (and the last
stages of ``ds_net``) on cached windows and prefix outputs (:class:`GmicCache`). Each training image
contributes the deterministic window and ``--window-samples`` noisy ones, of the clean crop or a perturbed
one.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np

from core.models.forward import model_device, to_model
from core.models.inputs import EXAM_VIEWS, window_from_crop
from core.training.checkpoints import cpu_state
from core.training.data import ImageItem
from core.training.evaluation import dmv_auc, dmv_labels
from core.training.objectives import balanced_order, dmv_nll
from core.training.options import TrainOptions, used_crops, validation_crop
from core.training.windows import crop_index, window, window_with_masks


def column_prefix(column: Any, x: Any, stages: int) -> Any:
    """The frozen part of a ResNet-22 column (DMV column or GMIC ``ds_net``): its output before the last
    ``stages`` stages (1..5), or the column's output (N, 256, h, w) when ``stages`` is 0."""
    h = column.first_pool(column.first_conv(x))
    for layer in column.layer_list[: len(column.layer_list) - stages]:
        h = layer(h)
    return h if stages else column.relu(column.final_bn(h))


def column_suffix(column: Any, h: Any, stages: int) -> Any:
    """The trainable rest of a column after :func:`column_prefix`: the column's output (N, 256, h, w)."""
    if not stages:
        return h
    for layer in column.layer_list[len(column.layer_list) - stages :]:
        h = layer(h)
    return column.relu(column.final_bn(h))


def trainable_top(column: Any, stages: int) -> list[Any]:
    """The modules of a column that :func:`column_suffix` runs (trained on cached prefix outputs)."""
    return [*column.layer_list[len(column.layer_list) - stages :], column.final_bn] if stages else []


def prefix_outputs(
    column: Any,
    items: list[ImageItem],
    spec: Any,
    stages: int,
    crop: int,
    seeds: list[int | None],
    windows: Any = None,
    target_size: tuple[int, int] | None = None,
    workers: int = 1,
    progress: Callable[[int], None] | None = None,
) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
    """Frozen-prefix outputs (n, ...) float32 of one window per item: the deterministic window of crop
    ``crop`` where the item's seed is None, else one with the window noise of ``RandomState(seed)``.

    Returns ``(outputs, windows, targets)``: the windows as dtype ``windows`` (n, rows, cols) when it is
    given, and with ``target_size`` (the saliency map's (h, w)) the items' finding masks cut with the same
    noise and max-pooled to that size, uint8 (n, 2, h, w) (:func:`saliency_target_loss`); else None.
    The windows are cut in ``workers`` threads (each from its own seed: the result does not depend on
    ``workers``), in chunks of ``max(8, workers)`` per forward pass; ``progress(n)`` is told each chunk's
    number of windows.
    """
    import torch
    import torch.nn.functional as F

    def cut(job: tuple[ImageItem, int | None]) -> tuple[np.ndarray, np.ndarray | None]:
        it, sd = job
        rng = None if sd is None else np.random.RandomState(sd)
        c = it.crops[min(crop, len(it.crops) - 1)]
        if target_size is None:
            return window_from_crop(c, it.geometry, spec, rng=rng, augment=rng is not None), None
        joint = window_with_masks(c, it, spec, rng)
        return joint[0], joint[1:]

    outs, wins_all, targets = [], [], []
    chunk = max(8, workers)
    column.eval()
    with torch.inference_mode(), ThreadPoolExecutor(max(1, workers)) as threads:
        for s in range(0, len(items), chunk):
            jobs = list(zip(items[s : s + chunk], seeds[s : s + chunk], strict=True))
            cuts = list(threads.map(cut, jobs))
            wins = [w for w, _ in cuts]
            masks = [m for _, m in cuts if m is not None]
            x = to_model(torch.from_numpy(np.stack(wins))[:, None], column)
            outs.append(column_prefix(column, x, stages).float().cpu().numpy())
            if progress is not None:
                progress(len(jobs))
            if windows is not None:
                wins_all.append(np.stack(wins).astype(windows))
            if masks:
                pooled = F.adaptive_max_pool2d(torch.from_numpy(np.stack(masks)), target_size) > 0.5
                targets.append(pooled.numpy().astype(np.uint8))
    return (
        np.concatenate(outs),
        np.concatenate(wins_all) if wins_all else None,
        np.concatenate(targets) if targets else None,
    )


def cache_progress(total: int, what: str, log: Callable[[str], None]) -> Callable[[int], None]:
    """A ``progress(n)`` callback that logs ``  cached 240/2400 windows (31 s)`` at every tenth of
    ``total``: a cache at 0.1 mm takes minutes, and its rate tells whether a time budget will hold."""
    t0, done, step = time.time(), [0, 0], max(1, total // 10)

    def progress(n: int) -> None:
        done[0] += n
        if done[0] // step > done[1] or done[0] >= total:
            done[1] = done[0] // step
            log(f"  cached {done[0]}/{total} {what} ({time.time() - t0:.0f} s)")

    return progress


def window_seeds(options: TrainOptions) -> list[int | None]:
    """Seeds of the cached windows per image: None (deterministic), then ``options.window_samples``
    noisy ones (offset by the image or exam index)."""
    return [None] + [options.seed * 100_000 + 10_000 * (k + 1) for k in range(options.window_samples)]


def dmv_prefix_inputs(
    model: Any,
    exams: list[dict[str, ImageItem]],
    spec: Any,
    stages: int,
    crop: int,
    seed: int | None,
    workers: int = 1,
    progress: Callable[[int], None] | None = None,
) -> list[np.ndarray]:
    """Per view (``EXAM_VIEWS`` order), the frozen-prefix outputs (n_exams, ...) of one window per image,
    the noisy ones drawn from ``RandomState(seed + 4 x exam index + view index)``; windows cut in
    ``workers`` threads."""
    return [
        prefix_outputs(
            model.four_view_resnet.column(v),
            [e[v] for e in exams],
            spec,
            stages,
            crop,
            [None if seed is None else seed + 4 * i + k for i in range(len(exams))],
            workers=workers,
            progress=progress,
        )[0]
        for k, v in enumerate(EXAM_VIEWS)
    ]


@dataclass
class GmicCache:
    """Windows and frozen ``ds_net`` prefix outputs for GMIC training with ``--freeze-trunk``.

    ``train[crop][sample]`` = (prefix outputs float32, windows float16 (n, rows, cols) or None, saliency
    targets uint8 (n, 2, h, w) or None) of the training images (sample 0 deterministic, then the noisy
    ones), for the crops training can draw (:func:`core.training.options.used_crops`; an empty list for the
    others). The deterministic windows are not stored (None): they are cut again from the items' crops when
    a batch needs them (at 0.1 mm a window is 11.3 MB as float16, a cut 15 ms), rounded through float16 as
    the stored ones are. A perturbed crop's windows are cut from the perturbed image, so the frozen stages'
    outputs are those of the perturbed windows: the perturbation reaches the trunk, not only the trained
    top. ``val`` the same for the deterministic validation windows of the validation crop
    (:func:`core.training.options.validation_crop`), whose windows are cut again as float32.
    """

    train: list[list[tuple[np.ndarray, np.ndarray | None, np.ndarray | None]]]
    val: tuple[np.ndarray, None, None]
    train_items: list[ImageItem]
    val_items: list[ImageItem]
    spec: Any
    val_crop: int
    workers: int = 1

    def batch(self, picks: list[tuple[int, int]], rng: np.random.RandomState) -> list[Any]:
        """Float32 tensors (prefix outputs, windows, targets or None) of (crop, image index) picks, each
        with a random one of the cached windows."""
        import torch

        chosen = [(self.train[c][rng.randint(len(self.train[c]))], c, i) for c, i in picks]
        again = iter(self._cut([(self.train_items[i], c) for s, c, i in chosen if s[1] is None]))
        windows = [next(again).astype(np.float16) if s[1] is None else s[1][i] for s, _, i in chosen]
        parts = [
            np.stack([s[0][i] for s, _, i in chosen]),
            np.stack(windows),
            None if chosen[0][0][2] is None else np.stack([s[2][i] for s, _, i in chosen]),
        ]
        return [None if a is None else torch.from_numpy(a.astype(np.float32)) for a in parts]

    def val_windows(self, start: int, stop: int) -> np.ndarray:
        """The deterministic validation windows ``start:stop`` (n, rows, cols) float32."""
        return np.stack(self._cut([(it, self.val_crop) for it in self.val_items[start:stop]]))

    def _cut(self, jobs: list[tuple[ImageItem, int]]) -> list[np.ndarray]:
        if not jobs:
            return []
        with ThreadPoolExecutor(max(1, min(self.workers, len(jobs)))) as threads:
            return list(threads.map(lambda j: window(j[0], self.spec, None, 0, False, j[1]), jobs))


def gmic_cache(model: Any, train_items, val_items, spec, options: TrainOptions, log) -> GmicCache:
    """The :class:`GmicCache` of GMIC ``--freeze-trunk`` training: every crop and cached window of the
    training images, the deterministic windows of the validation images."""
    from core.models.resnet import resnet22_output_size

    t0 = time.time()
    stages, n = options.unfreeze_stages, len(train_items)
    used = used_crops(len(train_items[0].crops), options.augment_prob)
    progress = cache_progress(n * len(used) * len(window_seeds(options)) + len(val_items), "windows", log)
    map_size = resnet22_output_size(*spec.config["input_size"]["CC"], first_layer_padding=3)
    train_in = [
        []
        if c not in used
        else [
            prefix_outputs(
                model.ds_net,
                train_items,
                spec,
                stages,
                c,
                [None if sd is None else sd + i for i in range(n)],
                windows=None if sd is None else np.float16,
                target_size=map_size if options.saliency_target else None,
                workers=options.workers,
                progress=progress,
            )
            for sd in window_seeds(options)
        ]
        for c in range(len(train_items[0].crops))
    ]
    val_crop = validation_crop(options)
    val_in = prefix_outputs(
        model.ds_net, val_items, spec, stages, val_crop, [None] * len(val_items), workers=options.workers,
        progress=progress,
    )  # fmt: skip
    log(f"windows and trunk outputs of {n} + {len(val_items)} images in {time.time() - t0:.0f} s")
    return GmicCache(train_in, val_in, train_items, val_items, spec, val_crop, options.workers)


def gmic_top(model: Any, windows: Any, prefix: Any, stages: int) -> dict[str, Any]:
    """GMIC's outputs from cached windows (N, rows, cols) and ``ds_net`` prefix outputs (torch tensors)."""
    return model.forward_from_global(windows[:, None], column_suffix(model.ds_net, prefix, stages))


def gmic_cached_scores(model: Any, cache: GmicCache, stages: int, batch_size: int) -> np.ndarray:
    """GMIC's (n, 2) ``y_fusion`` on the cached validation windows and prefix outputs."""
    import torch

    model.eval()
    device, out = model_device(model), []
    with torch.inference_mode():
        for s in range(0, len(cache.val[0]), batch_size):
            h = to_model(torch.from_numpy(cache.val[0][s : s + batch_size]), model)
            w = torch.from_numpy(cache.val_windows(s, s + batch_size)).to(device)
            out.append(gmic_top(model, w, h, stages)["y_fusion"].double().cpu().numpy())
    return np.concatenate(out)


def dmv_top(model: Any, feats: list[Any], stages: int) -> dict[str, Any]:
    """The trainable top of DMV on cached prefix outputs (one per view): the last ``stages`` stages of the
    columns, then the heads as ``SplitBreastModel.forward`` applies them."""
    import torch
    import torch.nn.functional as F

    h = [
        column_suffix(model.four_view_resnet.column(v), f, stages).flatten(2).mean(-1)
        for v, f in zip(EXAM_VIEWS, feats, strict=True)
    ]
    cc = F.relu(model.fc1_cc(torch.cat([h[0], h[1]], dim=1)))
    mlo = F.relu(model.fc1_mlo(torch.cat([h[2], h[3]], dim=1)))
    return {"CC": model.output_layer_cc(cc), "MLO": model.output_layer_mlo(mlo)}


def train_dmv_top(model, spec, train_exams, val_exams, options, rng, log, on_epoch=None):
    """Train the DMV heads (and the last ``options.unfreeze_stages`` column stages) on cached outputs of the
    frozen trunk; returns (history, best). Training samples are the deterministic window or one of
    ``options.window_samples`` noisy windows per image, of the clean crop or (``augment_prob``) a
    perturbed one. ``on_epoch(epoch, model, val_auc)``, if given, is called after each validation."""
    import torch

    t0 = time.time()
    stages = options.unfreeze_stages
    n_crops = len(train_exams[0]["L-CC"].crops)
    seeds = window_seeds(options)
    used = used_crops(n_crops, options.augment_prob)
    views = 4 * (len(train_exams) * len(used) * len(seeds) + len(val_exams))
    progress = cache_progress(views, "windows", log)
    workers = options.workers
    train_in = [
        [dmv_prefix_inputs(model, train_exams, spec, stages, c, sd, workers, progress) for sd in seeds]
        if c in used
        else []
        for c in range(n_crops)
    ]
    device = model_device(model)
    val_crop = validation_crop(options)
    val_in = [
        to_model(torch.from_numpy(a), model)
        for a in dmv_prefix_inputs(model, val_exams, spec, stages, val_crop, None, options.workers, progress)
    ]
    log(f"trunk outputs of {len(train_exams)} + {len(val_exams)} exams in {time.time() - t0:.0f} s")
    labels = np.array([dmv_labels(e) for e in train_exams])
    val_labels = np.array([dmv_labels(e) for e in val_exams]).reshape(-1, 4)
    pos = labels.sum(axis=0)
    pos_w = torch.tensor(np.minimum(10.0, (len(labels) - pos) / np.maximum(pos, 1)), dtype=torch.float32)
    pos_w = pos_w.to(device)
    columns = [model.four_view_resnet.cc, model.four_view_resnet.mlo]
    tops = [m for c in columns for m in trainable_top(c, stages)]
    heads = [model.fc1_cc, model.fc1_mlo, model.output_layer_cc, model.output_layer_mlo]
    params = [p for m in (*heads, *tops) for p in m.parameters()]
    opt = torch.optim.Adam(params, lr=options.lr, weight_decay=1e-4)
    history, best, bad = [], (-1.0, None, 0), 0
    flags = labels[:, 2:].max(axis=1)
    for epoch in range(1, options.epochs + 1):
        order = balanced_order(flags, options.samples_per_epoch or len(train_exams), rng)
        for m in tops:
            m.train()
        losses = []
        for s in range(0, len(order), options.batch_size):
            idx = order[s : s + options.batch_size]
            x = _dmv_top_batch(train_in, train_exams, idx, len(seeds), options.augment_prob, rng, model)
            y = torch.tensor(labels[idx], dtype=torch.float32, device=device)
            loss = dmv_nll(dmv_top(model, x, stages), y, pos_w)
            opt.zero_grad()
            loss.backward()
            opt.step()
            losses.append(loss.item())
        val_auc = dmv_auc(_dmv_top_probs(model, val_in, stages), val_labels)
        row = {
            "epoch": epoch,
            "train_loss": round(float(np.mean(losses)), 5),
            "val_auc": None if val_auc is None else round(val_auc, 4),
            "minutes": round((time.time() - t0) / 60, 2),
        }
        history.append(row)
        if on_epoch is not None:
            on_epoch(epoch, model, val_auc)
        if epoch % 5 == 0 or epoch == 1:
            log(f"top epoch {epoch}: loss {row['train_loss']:.4f}, val malignant AUC {row['val_auc']}")
        score = -1.0 if val_auc is None else val_auc
        if score > best[0] or best[1] is None:
            best, bad = (score, cpu_state(model), epoch), 0
        else:
            bad += 1
            if bad >= options.patience:
                log(f"early stop after epoch {epoch}")
                break
    return history, best


def _dmv_top_batch(train_in, train_exams, idx, n_seeds: int, augment_prob: float, rng, model) -> list[Any]:
    """Cached prefix outputs of the exams ``idx``, one tensor per view: each exam's crop (clean or, with
    ``augment_prob``, perturbed) and cached window drawn from ``rng``."""
    import torch

    picks = [(crop_index(train_exams[i]["L-CC"], rng, augment_prob), rng.randint(n_seeds)) for i in idx]
    return [
        to_model(
            torch.from_numpy(np.stack([train_in[c][w][k][i] for (c, w), i in zip(picks, idx, strict=True)])),
            model,
        )
        for k in range(len(EXAM_VIEWS))
    ]


def _dmv_top_probs(model, val_in, stages: int) -> np.ndarray:
    """Per-exam probabilities (n, 4) of the trained top on the cached validation outputs."""
    import torch

    model.eval()
    with torch.no_grad():
        out = dmv_top(model, val_in, stages)
        return ((torch.exp(out["CC"][..., 1]) + torch.exp(out["MLO"][..., 1])) / 2).cpu().numpy()
