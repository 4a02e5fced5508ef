"""The model card (``README.md`` of a model folder): data, accuracy per setting and contrast
mode, reliability, speed, limits and how to reproduce — written from the training report."""

from __future__ import annotations

from typing import Any

from liveaug.model_eval import TARGETS, auroc
from liveaug.reliability import DEFAULT_THRESHOLD
from liveaug.sources.simulated.config import CONTRAST_MODES
from liveaug.training.data import DOMAIN_CONTRASTS, NEVER_SEEN_CONTRAST, SHIFTED, TRAIN_RANGES
from liveaug.training.model import FEATURE_STRIDE, STRIDE

FEATURES_NOTE = "what the network sees at each place (decoder features): reliability, embeddings"
#: Settings whose frames count as a model's own in the reliability figures: the clean
#: held-out sessions, and the trained contrast modes for a model trained on many microscopes.
FAMILIAR_CLEAN = ("in_distribution",)
FAMILIAR_DOMAINS = ("in_distribution", *DOMAIN_CONTRASTS)


def card_figures(acc: dict[str, Any]) -> dict[str, dict[str, float]]:
    """The card's accuracy figures per setting, for the rdf's config."""
    keys = (*TARGETS, "dapi_r_full", "membrane_r_full")
    return {
        setting: {k: round(float(v[k]), 4) for k in keys if k in v} for setting, v in acc.items()
    }


def trust_figures(acc: dict[str, Any], familiar_settings: tuple[str, ...]) -> dict[str, Any]:
    """How well frame reliability tells each unfamiliar setting from the familiar ones (AUROC),
    the share of frames flagged per setting, and the per-cell error correlation."""
    familiar = [
        r for s in familiar_settings if s in acc for r in acc[s].get("frame_reliability", [])
    ]
    out: dict[str, Any] = {"flagged": {}, "auroc_vs_familiar": {}, "cell_error_spearman": {}}
    for setting, v in acc.items():
        if "frame_reliability" not in v:
            continue
        out["flagged"][setting] = round(float(v["flagged_fraction"]), 4)
        if "reliability_error_spearman" in v:
            out["cell_error_spearman"][setting] = round(float(v["reliability_error_spearman"]), 3)
        if setting not in familiar_settings:
            rel = v["frame_reliability"]
            out["auroc_vs_familiar"][setting] = round(
                auroc([1 - r for r in familiar], [1 - r for r in rel]), 4
            )
    return out


def _fmt(v: Any) -> str:
    return f"{v:.3f}" if isinstance(v, float) else str(v)


def model_card(report: dict[str, Any], variant: str) -> str:
    """The README.md model card: data, accuracy, speed, limits, how to reproduce."""
    acc = report["accuracy"][variant]
    ind, sh = acc["in_distribution"], acc["shifted"]
    meta = report["meta"]
    rows = []
    for key, target in TARGETS.items():
        rows.append(
            f"| {key} | ≥ {target:.2f} | {_fmt(ind.get(key))} "
            f"{'✓' if ind['pass'][key] else '✗'} | {_fmt(sh.get(key))} "
            f"{'✓' if sh['pass'][key] else '✗'} |"
        )
    for key in ("dapi_r_full", "membrane_r_full"):
        rows.append(
            f"| {key} (frame resolution) | – | {_fmt(ind.get(key))} | {_fmt(sh.get(key))} |"
        )
    ranges = "\n".join(f"| {k} | {lo:g} – {hi:g} |" for k, (lo, hi) in TRAIN_RANGES.items())
    sp = report["speed_ms_512"]
    speed_lines = "\n".join(
        f"- {k}: median {v['median_ms']:.1f} ms, p95 {v['p95_ms']:.1f} ms" for k, v in sp.items()
    )
    minutes = meta["train_minutes"]
    rec = ind.get("phase_recall", {})
    rec_s = sh.get("phase_recall", {})
    weights_note = (
        "Weights quantised to int8 (static, QDQ, per-channel) with onnxruntime."
        if variant == "int8"
        else "float32 ONNX, opset 17, IR 10."
    )
    n_eval, f_eval = meta["eval"]["sessions"], meta["eval"]["frames"]
    cal = report.get("calibration", {})
    offs = cal.get("offsets", [0.0] * 5)
    offsets_note = (
        f"S {offs[2] + 0.0:+.1f}, G2 {offs[3] + 0.0:+.1f}; balanced accuracy on the "
        "calibration cells "
        f"{cal.get('before', float('nan')):.3f} → {cal.get('after', float('nan')):.3f}"
    )
    apo_note = (
        f"{cal.get('apoptosis_offset', 0.0) + 0.0:+.1f}; per-cell F1 on the calibration cells "
        f"{cal.get('apoptosis_f1_before', float('nan')):.3f} → "
        f"{cal.get('apoptosis_f1_after', float('nan')):.3f}"
    )
    dz_shift, ph_shift = SHIFTED["optics__defocus_um"], SHIFTED["camera__photons"]
    modes = [m for m in CONTRAST_MODES if m in acc]
    mode_rows = "\n".join(
        f"| {m}{' (never seen)' if m == NEVER_SEEN_CONTRAST else ''} | "
        + " | ".join(_fmt(acc[m].get(k)) for k in TARGETS)
        + f" | {_fmt(acc[m].get('flagged_fraction'))} |"
        for m in modes
    )
    familiar_settings = FAMILIAR_DOMAINS if meta.get("domains") else FAMILIAR_CLEAN
    trust = trust_figures(acc, familiar_settings)
    familiar_note = "many microscopes, DIC never" if meta.get("domains") else "the clean microscope"
    trust_rows = "\n".join(
        f"| {s} | {trust['flagged'].get(s, float('nan')):.3f} | "
        f"{_fmt(trust['auroc_vs_familiar'].get(s, '–'))} | "
        f"{_fmt(trust['cell_error_spearman'].get(s, '–'))} |"
        for s in trust["flagged"]
    )
    return f"""# liveaug brightfield four-head U-Net{" (int8)" if variant == "int8" else ""}

From one brightfield frame this model predicts what would otherwise need dyes and reporters:

| output (role) | shape | meaning |
| --- | --- | --- |
| `dapi` | (N, 1, H/2, W/2) | virtual DAPI: background-subtracted photons / G1 nucleus peak |
| `membrane` | (N, 1, H/2, W/2) | virtual membrane stain |
| `phase` | (N, 5, H/2, W/2) | per-pixel probabilities of background, G1, S, G2, M (softmax) |
| `apoptosis` | (N, 1, H/2, W/2) | per-pixel probability of belonging to an apoptotic cell |
| `features` | (N, C, H/{FEATURE_STRIDE}, W/{FEATURE_STRIDE}) | {FEATURES_NOTE} |

Input: one brightfield channel (camera counts as float32) at **0.65 µm/px**, the simulator's
sampling, unbinned (liveaug bins finer frames towards it from the frame's pixel size); height
and width multiples of {STRIDE} (≥ 64). Outputs come at half the input's sampling (1.3 µm/px),
as the rdf's axis scales declare. Preprocessing: zero-mean, unit-variance over the whole image.
Architecture: a stride-2 stem (4 × 4 convolution) that keeps the fine brightfield detail 2 × 2
binning would average away, then a U-Net, five levels (16× downsampling), widths
{tuple(meta["train_config"]["widths"])}, one shared backbone; stains from the finest decoder
level (1.3 µm/px), phase and apoptosis from the next one (2.6 µm/px, upsampled). {weights_note}
Phase logits carry fixed per-class offsets ({offsets_note}) and the apoptosis logit one offset
({apo_note}), fitted after training on fresh training-distribution sessions (seeds 300000+,
never the evaluation seeds) so that per-cell calls are balanced across G1/S/G2/M instead of
following the training class frequencies, and apoptosis calls (mean probability inside the
cell > 0.5) balance precision and recall for the best F1.

## Training data

**Simulated brightfield only** (liveaug's physics-based simulated microscope): 500 sessions × 6
frames, 512 × 512 px, each session with its own settings drawn from:

| setting | range |
| --- | --- |
{ranges}
| bit depth | 8, 12, 16 |

Seeds ≥ 100000 are training sessions; every figure below is measured on held-out seeds
(9000+ in distribution, 9500+ shifted) that training never saw.

## Validation

{n_eval} held-out sessions × {f_eval} frames per setting, 512 × 512 px.
*In distribution*: simulator defaults (defocus 3 µm, 3000 photons, 12 bit). *Shifted*: defocus
{dz_shift:g} µm (twice the trained maximum), {ph_shift:g} photons
(a quarter of the least light trained on). Pearson r per image at model resolution (truth
binned to the outputs' 1.3 µm/px), and at frame resolution (prediction upsampled). Per-cell
figures use the mean probability inside the true cell mask; cells touching the border are left
out, apoptotic cells are left out of phase.

| figure | target | in distribution | shifted |
| --- | --- | --- | --- |
{chr(10).join(rows)}

Phase recall per class, in distribution: {", ".join(f"{k} {v:.2f}" for k, v in rec.items())};
shifted: {", ".join(f"{k} {v:.2f}" for k, v in rec_s.items())}.
Cells scored (in distribution): {ind.get("phase_cells")}, apoptotic
{ind.get("apoptotic_cells")} of {ind.get("cells")}.

## Speed

All four outputs for one 512 × 512 frame (outputs 256²), onnxruntime CPU provider, 2 threads,
on the training machine ({meta["machine"]}), preprocessing included:

{speed_lines}

One backbone serves all four outputs: onnxruntime runs the whole graph whichever outputs are
fetched, so switching overlays off saves nothing measurable (`liveaug bench` lists the cost per
output). Four separate networks of this size, one per role, measured 44 ms for all four on the
same machine (shared: 17 ms; both measured with the earlier binned-input version of this
backbone), which is why the backbone is shared.

## Other microscopes (contrast modes)

Held-out sessions of randomly drawn microscopes in each contrast mode ({n_eval} sessions ×
{f_eval} frames each, at the model's sampling; light, camera and sample drawn as in training).
{NEVER_SEEN_CONTRAST} was kept out of training entirely.

| mode | {" | ".join(TARGETS)} | frames flagged |
| --- | {" | ".join("---" for _ in TARGETS)} | --- |
{mode_rows}

## Reliability

Every frame gets a reliability in [0, 1] from the `features` output: its features are projected
on the 32 leading principal axes of training features (whitened), the frame is described by each
axis' mean and spread over it, and the Mahalanobis distance of that description from those of
fresh frames drawn as the training frames were ({familiar_note}) is ranked among held-back ones
(`reliability.npz`, an attachment). A cell is described by each axis' mean inside it and ranked
among training cells. 0.5 is a typical training frame; frames below the threshold
({DEFAULT_THRESHOLD:g}) are flagged, and event rules ignore cells below it unless a rule says
`unreliable: true`. Per setting: the share of frames flagged, how well the frame reliability
tells that setting from the model's own (AUROC; own = {", ".join(familiar_settings)}), and
Spearman ρ of per-cell reliability against the per-cell virtual DAPI error (negative: less
reliable cells err more).

| setting | flagged | AUROC vs familiar | ρ(reliability, cell error) |
| --- | --- | --- | --- |
{trust_rows}

## Limits

- **Not validated on real cells.** Trained and tested on simulated brightfield only; real optics,
  cell lines and culture conditions will differ. Fine-tune on your own paired brightfield /
  fluorescence data before trusting the outputs (`liveaug.training` is the recipe).
- Outside the trained settings (see the shifted column and the contrast modes) accuracy drops;
  the reliability score flags much of that, not all of it (see Reliability).
- Run it at its sampling (0.65 µm/px in; liveaug bins finer frames towards it). Frames much
  coarser than that are outside its training.
- Virtual stains are blurrier than the true stains (the outputs are at 1.3 µm/px) and
  under-shoot the brightest nuclei (condensed mitotic and apoptotic chromatin).
- Phase is inferred from nuclear dry mass and cell size; cells at the G1/S and S/G2 boundaries
  are inherently ambiguous.

## Reproduce

```bash
pip install 'liveaug[train]'
{meta["command"]}
```

{meta.get("recipe") or ""}
Training took {f"{minutes:.0f} min" if minutes else "(not recorded)"} on 2 threads of the shared
2-core CPU (batch {meta["train_config"]["batch"]}, {meta["train_config"]["crop"]}² crops), plus
about 5 min to simulate the cache and under a minute to export, calibrate, quantise and evaluate.
ONNX vs PyTorch max abs difference:
{", ".join(f"{k} {v:.1e}" for k, v in report["onnx_vs_torch_max_abs"].items())}.
"""
