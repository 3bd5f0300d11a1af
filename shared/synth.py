"""Synthetic beach-volleyball clips with exact ground truth, for tests, the demo and benchmarks.

A fixed camera looks at a sand court with a net. Four players move on smooth paths; the
two on each side cross each other (one occludes the other), and a small ball flies on
parabolic arcs between players. Ground truth is exact: boxes are the bounding boxes of
what is drawn, visibility is the share of an object's pixels not covered by objects in
front of it. Class 1 is player, 2 is ball.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from shared.formats.conversions import mot_to_labelstudio
from shared.formats.mot_txt import MotTable, write_mot
from shared.video import VideoWriter

PLAYER, BALL = 1, 2
JERSEYS = [(40, 40, 200), (40, 40, 200), (200, 90, 30), (200, 90, 30)]  # BGR: two teams
SKIN = (120, 160, 210)


@dataclass
class SynthScene:
    video: Path
    gt_txt: Path
    gt_labelstudio: Path
    gt: MotTable
    size: tuple[int, int]
    fps: float
    frames: int


def _background(width: int, height: int, rng: np.random.Generator) -> np.ndarray:
    sand = np.empty((height, width, 3), np.float32)
    sand[:] = (150, 200, 225)
    grain = cv2.GaussianBlur(rng.normal(0, 14, (height, width)).astype(np.float32), (0, 0), 1.5)
    sand += grain[..., None]
    image = np.clip(sand, 0, 255).astype(np.uint8)
    # court lines in mild perspective, then the net across the middle
    far_y, near_y = int(0.22 * height), int(0.93 * height)
    far = (int(0.25 * width), int(0.75 * width))
    near = (int(0.08 * width), int(0.92 * width))
    corners = np.array([[far[0], far_y], [far[1], far_y], [near[1], near_y], [near[0], near_y]], np.int32)
    cv2.polylines(image, [corners], True, (245, 245, 245), 3, cv2.LINE_AA)
    net_y = int(0.45 * height)
    cv2.line(image, (int(0.14 * width), net_y), (int(0.86 * width), net_y), (60, 60, 60), 4, cv2.LINE_AA)
    cv2.line(
        image,
        (int(0.14 * width), net_y - 60),
        (int(0.86 * width), net_y - 60),
        (235, 235, 235),
        5,
        cv2.LINE_AA,
    )
    for x in (int(0.14 * width), int(0.86 * width)):
        cv2.line(image, (x, net_y + 40), (x, net_y - 70), (50, 50, 50), 6)
    return image


def _player_paths(frames: int, width: int, height: int, rng: np.random.Generator) -> np.ndarray:
    """Feet positions (frames, 4, 2). Players 0/1 share the far side, 2/3 the near side, and cross."""
    t = np.arange(frames, dtype=np.float64)
    paths = np.zeros((frames, 4, 2))
    for side, (y_base, spread) in enumerate(((0.38, 0.05), (0.78, 0.08))):
        omega = 2 * math.pi / rng.uniform(70, 110)
        phase = rng.uniform(0, 2 * math.pi)
        half = rng.uniform(0.16, 0.22) * width
        centre = width / 2 + rng.uniform(-0.05, 0.05) * width
        for k in range(2):
            sign = 1 if k == 0 else -1
            wobble = 2 * math.pi / rng.uniform(40, 60)
            paths[:, 2 * side + k, 0] = centre + sign * half * np.cos(omega * t + phase)
            paths[:, 2 * side + k, 1] = (y_base + sign * 0.012) * height + spread * height * 0.3 * np.sin(
                wobble * t + rng.uniform(0, 6)
            )
    return paths


def _player_size(feet_y: float, height: int) -> tuple[int, int]:
    """Farther players (smaller y) are drawn smaller."""
    scale = 0.55 + 0.6 * (feet_y / height)
    return int(34 * scale * height / 720), int(110 * scale * height / 720)


def _draw_player(canvas: np.ndarray, ids: np.ndarray, oid: int, feet: np.ndarray, size, colour, phase: float):
    w, h = size
    x, y = int(round(feet[0])), int(round(feet[1]))
    left, top = x - w // 2, y - h
    head_r = max(3, w // 4)
    stride = int(0.25 * w * math.sin(phase))
    shapes = [
        ("ellipse", (x, top + head_r), head_r, SKIN),
        ("rect", (left, top + 2 * head_r, left + w, top + int(0.62 * h)), 0, colour),
        ("rect", (x - w // 3 + stride, top + int(0.62 * h), x - 1 + stride, y), 0, SKIN),
        ("rect", (x + 1 - stride, top + int(0.62 * h), x + w // 3 - stride, y), 0, SKIN),
    ]
    for kind, geom, radius, col in shapes:
        for target, value in ((canvas, col), (ids, (oid,))):
            if kind == "ellipse":
                cv2.circle(target, geom, radius, value, -1)
            else:
                cv2.rectangle(target, geom[:2], geom[2:], value, -1)


def _ball_path(frames: int, players: np.ndarray, height: int, rng: np.random.Generator) -> np.ndarray:
    """Ball centre per frame: arcs from one player's hands to a player on the other side."""
    centres = np.zeros((frames, 2))
    start, holder = 0, int(rng.integers(0, 4))
    while start < frames:
        duration = int(rng.integers(28, 45))
        target = int(rng.choice([2, 3]) if holder < 2 else rng.choice([0, 1]))
        end = min(frames, start + duration)
        apex = rng.uniform(0.18, 0.3) * height
        for f in range(start, end):
            s = (f - start) / duration
            a = players[start, holder] - (0, 0.9 * _player_size(players[start, holder, 1], height)[1])
            b = players[min(start + duration, frames - 1), target] - (
                0,
                0.9 * _player_size(players[min(start + duration, frames - 1), target, 1], height)[1],
            )
            centres[f] = a + (b - a) * s - (0, apex * 4 * s * (1 - s))
        start, holder = end, target
    return centres


def render_scene(
    out_dir: str | os.PathLike,
    frames: int = 150,
    seed: int = 0,
    size: tuple[int, int] = (1280, 720),
    fps: float = 25.0,
    name: str = "synth",
) -> SynthScene:
    """Render `<out>/<name>.mp4`, `<out>/gt.txt` and `<out>/gt_labelstudio.json`."""
    if frames < 1:
        raise ValueError("frames must be >= 1")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    width, height = size
    rng = np.random.default_rng(seed)
    background = _background(width, height, rng)
    players = _player_paths(frames, width, height, rng)
    ball = _ball_path(frames, players, height, rng)
    ball_radius = max(4, int(round(7 * height / 720)))
    rows: list[tuple] = []
    noise_bank = [rng.normal(0, 2.0, (height, width, 3)).astype(np.int16) for _ in range(6)]
    video_path = out / f"{name}.mp4"
    with VideoWriter(video_path, fps, size) as writer:
        for f in range(frames):
            canvas = background.copy()
            ids = np.zeros((height, width), np.uint8)
            masks = {}
            order = np.argsort(players[f, :, 1])  # draw far players first, near ones occlude them
            for p in order:
                oid = int(p) + 1
                masks[oid] = np.zeros_like(ids)
                sz = _player_size(players[f, p, 1], height)
                _draw_player(canvas, ids, oid, players[f, p], sz, JERSEYS[p], f * 0.35 + p)
                _draw_player(masks[oid], masks[oid], 1, players[f, p], sz, (1,), f * 0.35 + p)
            centre = tuple(int(round(v)) for v in ball[f])
            cv2.circle(canvas, centre, ball_radius, (245, 250, 255), -1, cv2.LINE_AA)
            cv2.circle(canvas, centre, ball_radius, (0, 180, 255), 1, cv2.LINE_AA)
            cv2.circle(ids, centre, ball_radius, (5,), -1)
            masks[5] = np.zeros_like(ids)
            cv2.circle(masks[5], centre, ball_radius, (1,), -1)
            noisy = canvas.astype(np.int16) + noise_bank[f % len(noise_bank)]
            writer.write(np.clip(noisy, 0, 255).astype(np.uint8))
            for oid, mask in sorted(masks.items()):
                area = cv2.countNonZero(mask)
                if area < 4:  # left the image
                    continue
                x, y, w, h = cv2.boundingRect(mask)
                visible = np.count_nonzero(ids[y : y + h, x : x + w] == oid) / area
                cls = BALL if oid == 5 else PLAYER
                rows.append((f + 1, oid, float(x), float(y), float(w), float(h), 1, cls, round(visible, 4), -1))
    gt = MotTable.from_matrix(np.asarray(rows, np.float64))
    gt_txt, gt_ls = out / "gt.txt", out / "gt_labelstudio.json"
    write_mot(gt_txt, gt, columns=9)
    mot_to_labelstudio(gt, gt_ls, size, image_pattern=f"{name}/img1/{{frame:06d}}.jpg", as_predictions=False)
    (out / "scene.json").write_text(json.dumps({"frames": frames, "seed": seed, "size": size, "fps": fps}))
    return SynthScene(video_path, gt_txt, gt_ls, gt, size, fps, frames)


def render_still_frames(out_dir: str | os.PathLike, frames: int = 6, size: int = 256, seed: int = 0) -> Path:
    """`<out>/frames/<n:06d>.png` + `<out>/gt.txt`: independent stills of three players (jersey-coloured
    boxes) and a ball (a white disc) at random places on sand, large relative to the image, exact boxes.
    The detector's overfitting check: a handful of frames a small model can learn in a minute on a CPU."""
    out = Path(out_dir)
    (out / "frames").mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    rows = []
    for f in range(1, frames + 1):
        image = np.full((size, size, 3), (110, 170, 205), np.uint8)
        w, h = int(size * 0.12), int(size * 0.32)
        for pid in range(1, 4):
            x, y = int(rng.uniform(0, size - w)), int(rng.uniform(0, size - h))
            cv2.rectangle(image, (x, y), (x + w - 1, y + h - 1), JERSEYS[pid - 1], -1)
            rows.append((f, pid, x, y, w, h, 1, PLAYER, 1.0, -1))
        r = int(size * 0.06)
        cx, cy = int(rng.uniform(r, size - r)), int(rng.uniform(r, size - r))
        cv2.circle(image, (cx, cy), r, (245, 250, 255), -1)
        rows.append((f, 9, cx - r, cy - r, 2 * r + 1, 2 * r + 1, 1, BALL, 1.0, -1))
        cv2.imwrite(str(out / "frames" / f"{f:06d}.png"), image)
    write_mot(out / "gt.txt", MotTable.from_matrix(np.asarray(rows, np.float64)), columns=9)
    return out
