"""Drawing the arm into an RGB array with numpy alone (no display, no OpenGL), and an optional
pygame window for ``render_mode="human"``."""

from __future__ import annotations

from typing import Any

import numpy as np

BACKGROUND = (244, 244, 240)
GOAL = (66, 110, 220)
GOAL_REACHED = (60, 170, 80)
LINK = (50, 50, 60)
JOINT = (230, 120, 40)
LINK_WIDTH = 8.0
JOINT_RADIUS = 7.0

Point = tuple[float, float]


def _pixel_box(size: int, points: list[Point], margin: float) -> tuple[slice, slice, np.ndarray,
                                                                       np.ndarray]:
    """Rows/columns covering ``points`` plus ``margin`` and the plane coordinates of their pixel
    centres (y up: row 0 is the top of the plane)."""
    xs, ys = [p[0] for p in points], [p[1] for p in points]
    c0 = max(0, int(np.floor(min(xs) - margin)))
    c1 = min(size, int(np.ceil(max(xs) + margin)) + 1)
    r0 = max(0, int(np.floor(size - max(ys) - margin)))
    r1 = min(size, int(np.ceil(size - min(ys) + margin)) + 1)
    cols = np.arange(c0, c1) + 0.5
    rows = np.arange(r0, r1) + 0.5
    x = cols[None, :]
    y = size - rows[:, None]
    return slice(r0, r1), slice(c0, c1), x, y


def _disk(frame: np.ndarray, centre: Point, radius: float, color: tuple[int, int, int]) -> None:
    rows, cols, x, y = _pixel_box(frame.shape[0], [centre], radius)
    inside = (x - centre[0]) ** 2 + (y - centre[1]) ** 2 <= radius**2
    frame[rows, cols][inside] = color


def _segment(frame: np.ndarray, a: Point, b: Point, width: float,
             color: tuple[int, int, int]) -> None:
    rows, cols, x, y = _pixel_box(frame.shape[0], [a, b], width)
    dx, dy = b[0] - a[0], b[1] - a[1]
    length2 = max(dx * dx + dy * dy, 1e-12)
    t = np.clip(((x - a[0]) * dx + (y - a[1]) * dy) / length2, 0.0, 1.0)
    inside = (x - a[0] - t * dx) ** 2 + (y - a[1] - t * dy) ** 2 <= (width / 2) ** 2
    frame[rows, cols][inside] = color


def draw_arm(size: int, base: Point, elbow: Point, tip: Point, goal: Point, goal_radius: float,
             on_goal: bool) -> np.ndarray:
    """A ``size x size x 3`` uint8 frame: the goal (green once the fingertip is on it), the two
    links and the three joints."""
    frame = np.empty((size, size, 3), dtype=np.uint8)
    frame[:] = BACKGROUND
    _disk(frame, goal, goal_radius, GOAL_REACHED if on_goal else GOAL)
    _segment(frame, base, elbow, LINK_WIDTH, LINK)
    _segment(frame, elbow, tip, LINK_WIDTH, LINK)
    for joint in (base, elbow):
        _disk(frame, joint, JOINT_RADIUS, JOINT)
    _disk(frame, tip, JOINT_RADIUS / 2, JOINT)
    return frame


class Window:
    """A pygame window showing frames (``render_mode="human"``)."""

    def __init__(self, size: int, fps: int):
        try:
            import pygame
        except ImportError as exc:
            from gymnasium.error import DependencyNotInstalled

            raise DependencyNotInstalled(
                "render_mode='human' needs pygame to open a window: pip install pygame "
                "(or use render_mode='rgb_array', which needs no display)") from exc
        self._pygame: Any = pygame
        pygame.init()
        pygame.display.init()
        self._screen = pygame.display.set_mode((size, size))
        pygame.display.set_caption("rlplug arm")
        self._clock = pygame.time.Clock()
        self._fps = fps

    def show(self, frame: np.ndarray) -> None:
        pygame = self._pygame
        pygame.event.pump()
        surface = pygame.surfarray.make_surface(np.transpose(frame, (1, 0, 2)))
        self._screen.blit(surface, (0, 0))
        pygame.display.flip()
        self._clock.tick(self._fps)

    def close(self) -> None:
        self._pygame.display.quit()
        self._pygame.quit()
