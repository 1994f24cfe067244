"""Planar articulated character for Adversarial Motion Priors (AMP) training.

The simulation is a small, fully vectorised (numpy) model of a biped seen from the side
for its limbs and from above for its root. It exists to give an AMP trainer (PPO policy
plus a discriminator-style reward against reference motion) something honest to learn:
actions causally determine the motion, moving well needs coordinated periodic leg
motion, and a careless policy falls over.

Character
---------
Five links: a torso, two thighs and two shanks (``left`` and ``right`` legs). Four
actuated joints, in this order everywhere (actions, observations, AMP features)::

    0 hip_left   1 knee_left   2 hip_right   3 knee_right

Hip angles are measured from the pelvis' vertical, positive swings the foot forward;
knee angles are flexion, ``>= 0``. The torso pitch ``phi`` (positive leans forward) is
*not* actuated: the body is an inverted pendulum over its support feet, balanced by
foot placement. The root moves in the ground plane with position ``(x, y)``, heading
``theta`` (not wrapped), forward speed ``v`` and yaw rate ``omega``; its height is set by
the legs.

Dynamics (one semi-implicit Euler step of ``config.dt`` per ``step``)
---------------------------------------------------------------------
* Actions in ``[-1, 1]`` are PD targets: hips map to ``+-hip_range``, knees map to
  ``[0, knee_range]``. Joint torque ``tau = kp (target - q) - kd qd`` is clipped to
  ``+-max_torque``; a leg in ground contact has ``1 + stance_inertia`` times the
  inertia of a swinging leg (it has to move the body). Joint angles are clipped to their
  limits (velocity zeroed there).
* Leg kinematics: a leg's vertical extent is ``l1 cos(hip) + l2 cos(hip - knee)`` and its
  foot's forward offset ``(l1 sin(hip) + l2 sin(hip - knee)) / (l1 + l2)`` leg lengths.
  The pelvis rests on the
  longest leg; a leg is in contact (``c`` in ``[0, 1]``) when its foot is within
  ``contact_band`` of the ground.
* Propulsion (no-slip traction): stance feet pull the root towards their backward sweep
  speed ``u = -d(foot)/dt``: ``dv/dt = traction_rate (sum c u / sum c - v)`` limited
  to ``+-max_traction_accel``. A push at the left foot yaws the body right and vice versa:
  ``omega`` relaxes towards ``yaw_coupling (c_R u_R - c_L u_L) / sum c``. So the root
  only moves forward when stance feet sweep back while swing feet move forward *lifted*
  (knee flexed), and it turns when left and right strokes differ.
* Torso (inverted pendulum over the support): ``phi'' = torso_gravity sin(phi) -
  torso_damping phi' - support_gain p - accel_coupling dv/dt`` where ``p`` is the
  contact-weighted forward foot offset in leg lengths (a foot planted ahead of the
  pelvis tips the body back). Upright is unstable: without feedback (placing the feet
  ahead when leaning forward) the character falls within about a second. It *falls*
  (episode terminates) when ``|phi| > fall_angle``.

Task
----
Each episode draws a target point that starts at the character and moves at a random
speed along a smoothly curving random path (turn rate: sum of two random sinusoids).
The per-step reward is the task reward ``exp(-distance / reward_distance_scale)`` in
``(0, 1]``; the AMP style reward is left to the trainer's discriminator, which reads
``info["amp_obs"]``. Episodes last ``max_episode_steps`` steps (truncation) unless the
character falls first (termination), so episode length and episode return improve with
learning. Compare policies by episode return, not per-step reward: a policy that falls
at once never lets the target get far away. The observation carries the episode clock
(``episode_progress``), so a memoryless policy can keep a gait phase
(:class:`GaitController` does).

Vector API
----------
:class:`MotionEnv` is a :class:`gymnasium.vector.VectorEnv` over ``num_envs``
characters. Batched arrays lead with ``num_envs``:

* ``observation_space``: ``Box(float32, (num_envs, OBS_DIM))``; per env
  ``single_observation_space``: ``Box(float32, (OBS_DIM,))``, see :data:`OBS_FIELDS`.
* ``action_space``: ``Box(-1, 1, float32, (num_envs, ACTION_DIM))``; per env
  ``single_action_space``: ``Box(-1, 1, float32, (ACTION_DIM,))``.
* ``reset(seed=...) -> (obs, info)``; ``step(actions) -> (obs, reward, terminated,
  truncated, info)`` with ``reward`` float32 and ``terminated``/``truncated`` bool,
  each of shape ``(num_envs,)``.
* Autoreset is *same-step* (``metadata["autoreset_mode"] == AutoresetMode.SAME_STEP``):
  an env that terminates or truncates is reset inside that ``step``; the returned
  ``obs`` row is the first observation of its new episode and ``info["final_obs"]``
  (dense ``(num_envs, OBS_DIM)``, rows valid where ``info["_final_obs"]``) holds the
  terminal observation. ``info["amp_obs"]`` always describes the transition that was
  actually simulated (it uses the terminal state, not the reset state).
* ``info`` keys after ``step``: ``amp_obs`` ``(num_envs, AMP_TRANSITION_DIM)``,
  ``tracking_error`` (distance to the target after the step, metres), ``fell`` (bool),
  ``final_obs``/``_final_obs``, ``episode_return``/``episode_length`` (valid where
  the episode ended, zero elsewhere).
* Everything random comes from the generator seeded by ``reset(seed=...)``: the same
  seed and the same actions give bit-identical trajectories.

AMP features
------------
A frame (:data:`AMP_FRAME_DIM` = 14, heading-local, see :data:`AMP_FRAME_FIELDS`) is
joint angles (4), joint velocities (4), torso pitch and pitch rate, root forward and
vertical velocity, yaw rate and pelvis height. :func:`amp_observation` computes it from a
:class:`MotionState`; reference clips store frames in the same layout; transitions for
the discriminator are two consecutive frames concatenated (``AMP_TRANSITION_DIM`` = 28),
which is the layout of both ``info["amp_obs"]`` and :func:`sample_reference_transitions`.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable
from dataclasses import dataclass, fields, replace
from typing import Any, Final

import numpy as np
from gymnasium import spaces
from gymnasium.vector import AutoresetMode, VectorEnv
from numpy.typing import NDArray

__all__ = [
    "ACTION_DIM",
    "AMP_FRAME_DIM",
    "AMP_FRAME_FIELDS",
    "AMP_TRANSITION_DIM",
    "JOINT_NAMES",
    "OBS_DIM",
    "OBS_FIELDS",
    "GaitController",
    "MotionClip",
    "MotionConfig",
    "MotionEnv",
    "MotionState",
    "amp_observation",
    "evaluate",
    "make_reference_clips",
    "sample_reference_transitions",
]

FloatArray = NDArray[np.float64]
Float32Array = NDArray[np.float32]
BoolArray = NDArray[np.bool_]

#: Actuated joints, in action / observation / AMP-feature order.
JOINT_NAMES: Final[tuple[str, ...]] = ("hip_left", "knee_left", "hip_right", "knee_right")
#: Number of actuated joints (= per-env action width).
ACTION_DIM: Final[int] = len(JOINT_NAMES)
#: Per-frame AMP feature names (heading-local), in column order.
AMP_FRAME_FIELDS: Final[tuple[str, ...]] = (
    *(f"{name}_angle" for name in JOINT_NAMES),
    *(f"{name}_velocity" for name in JOINT_NAMES),
    "torso_pitch",
    "torso_pitch_rate",
    "root_forward_velocity",
    "root_vertical_velocity",
    "root_yaw_rate",
    "pelvis_height",
)
#: Width of one AMP frame.
AMP_FRAME_DIM: Final[int] = len(AMP_FRAME_FIELDS)
#: Width of one AMP transition: frame(s_t) followed by frame(s_t+1).
AMP_TRANSITION_DIM: Final[int] = 2 * AMP_FRAME_DIM
#: Per-env policy observation names, in column order (the first AMP_FRAME_DIM = AMP frame).
OBS_FIELDS: Final[tuple[str, ...]] = (
    *AMP_FRAME_FIELDS,
    "contact_left",
    "contact_right",
    "target_forward",  # target position in the heading frame, metres (clipped)
    "target_left",
    "target_heading_sin",  # sin / cos of (target path heading - character heading)
    "target_heading_cos",
    "target_speed",
    "episode_progress",  # steps taken / max_episode_steps
)
#: Per-env observation width.
OBS_DIM: Final[int] = len(OBS_FIELDS)

_HIPS = slice(0, 4, 2)
_KNEES = slice(1, 4, 2)


@dataclass(frozen=True)
class MotionConfig:
    """Parameters of :class:`MotionEnv`; validated on construction (ValueError names the field)."""

    #: Number of parallel characters simulated in one batch, >= 1.
    num_envs: int = 16
    #: Episode length in steps before truncation, >= 1.
    max_episode_steps: int = 200
    #: Integration / control timestep in seconds, in (0, 0.1].
    dt: float = 1.0 / 30.0
    #: Thigh length in metres, > 0.
    thigh_length: float = 0.45
    #: Shank length in metres, > 0.
    shank_length: float = 0.45
    #: Hip PD target range: action +-1 maps to +-hip_range radians, in (0, pi/2].
    hip_range: float = 0.8
    #: Knee PD target range: action -1..1 maps to 0..knee_range radians, in (0, 2.5].
    knee_range: float = 1.4
    #: Joint PD stiffness (torque per radian per unit inertia), > 0.
    joint_stiffness: float = 300.0
    #: Joint PD damping (torque per rad/s per unit inertia), >= 0.
    joint_damping: float = 25.0
    #: Joint torque limit (per unit swing-leg inertia), > 0.
    max_torque: float = 150.0
    #: Extra relative inertia of a leg in ground contact, >= 0.
    stance_inertia: float = 1.0
    #: Height band (m) within which a foot counts as touching the ground, > 0.
    contact_band: float = 0.03
    #: Relaxation rate (1/s) of root speed towards the stance feet's sweep speed, > 0.
    traction_rate: float = 15.0
    #: Friction limit on root forward acceleration in m/s^2, > 0.
    max_traction_accel: float = 6.0
    #: Yaw rate (rad/s) per m/s of left/right stance-push imbalance, >= 0.
    yaw_coupling: float = 0.5
    #: Relaxation rate (1/s) of yaw rate towards its traction target, > 0.
    yaw_rate_gain: float = 5.0
    #: Gravity term of the torso inverted pendulum (1/s^2), >= 0.
    torso_gravity: float = 6.0
    #: Torso pitch damping (1/s), >= 0.
    torso_damping: float = 1.0
    #: Torso pitch acceleration (1/s^2) per leg length of support-foot offset, > 0.
    support_gain: float = 12.0
    #: Torso pitch acceleration per m/s^2 of root forward acceleration, >= 0.
    accel_coupling: float = 0.15
    #: Torso pitch magnitude (rad) beyond which the character has fallen, in (0, pi/2).
    fall_angle: float = 0.7
    #: Half-width of the uniform initial joint-angle / torso-pitch perturbation (rad), >= 0.
    init_noise: float = 0.05
    #: Slowest target speed along the path in m/s, > 0.
    target_speed_min: float = 0.5
    #: Fastest target speed along the path in m/s, >= target_speed_min.
    target_speed_max: float = 1.0
    #: Peak target path turn rate in rad/s, >= 0.
    target_turn_rate: float = 0.4
    #: Distance scale (m) of the task reward exp(-distance / scale), > 0.
    reward_distance_scale: float = 0.5
    #: Final target distance (m) within which a non-fallen episode is a success, > 0.
    success_tolerance: float = 0.75
    #: Clip (m) applied to the target position in the observation, > 0.
    obs_target_clip: float = 5.0

    def __post_init__(self) -> None:
        """Check every field's range; raise ValueError naming the offending field."""
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, bool) or not isinstance(value, numbers.Real):
                raise ValueError(f"MotionConfig.{f.name} must be a number, got {value!r}")
            if not math.isfinite(value):
                raise ValueError(f"MotionConfig.{f.name} must be finite, got {value!r}")
        for name in ("num_envs", "max_episode_steps"):
            value = getattr(self, name)
            if not isinstance(value, numbers.Integral) or value < 1:
                raise ValueError(f"MotionConfig.{name} must be an integer >= 1, got {value!r}")
        _check_range("dt", self.dt, 0.0, 0.1, low_open=True)
        _check_range("hip_range", self.hip_range, 0.0, math.pi / 2, low_open=True)
        _check_range("knee_range", self.knee_range, 0.0, 2.5, low_open=True)
        _check_range("fall_angle", self.fall_angle, 0.0, math.pi / 2, True, True)
        for name in (
            "thigh_length",
            "shank_length",
            "joint_stiffness",
            "max_torque",
            "contact_band",
            "traction_rate",
            "max_traction_accel",
            "yaw_rate_gain",
            "support_gain",
            "target_speed_min",
            "reward_distance_scale",
            "success_tolerance",
            "obs_target_clip",
        ):
            _check_range(name, getattr(self, name), 0.0, math.inf, low_open=True)
        for name in (
            "joint_damping",
            "stance_inertia",
            "yaw_coupling",
            "torso_gravity",
            "torso_damping",
            "accel_coupling",
            "init_noise",
            "target_turn_rate",
        ):
            _check_range(name, getattr(self, name), 0.0, math.inf)
        if self.target_speed_max < self.target_speed_min:
            raise ValueError(
                "MotionConfig.target_speed_max must be >= target_speed_min "
                f"({self.target_speed_min!r}), got {self.target_speed_max!r}"
            )


def _check_range(
    name: str,
    value: float,
    low: float,
    high: float,
    low_open: bool = False,
    high_open: bool = False,
) -> None:
    """Raise ValueError naming ``MotionConfig.<name>`` unless ``value`` lies in the interval."""
    above = value > low if low_open else value >= low
    below = value < high if high_open else value <= high
    if not (above and below):
        lo = "(" if low_open else "["
        hi = ")" if high_open or math.isinf(high) else "]"
        raise ValueError(f"MotionConfig.{name} must be in {lo}{low:g}, {high:g}{hi}, got {value!r}")


@dataclass(frozen=True)
class MotionClip:
    """One procedurally generated reference motion clip.

    ``frames`` has shape ``(num_frames, AMP_FRAME_DIM)`` (float32, layout
    :data:`AMP_FRAME_FIELDS`), sampled every ``dt`` seconds so consecutive rows form
    transitions comparable with ``info["amp_obs"]``.
    """

    #: Gait style: "walk", "trot", "turn_left" or "turn_right".
    name: str
    #: AMP frames, shape (num_frames, AMP_FRAME_DIM), float32.
    frames: Float32Array
    #: Seconds between consecutive frames.
    dt: float
    #: Stride frequency in Hz.
    frequency: float
    #: Mean root forward speed over the clip in m/s.
    speed: float


@dataclass(frozen=True)
class MotionState:
    """Batched physical state (leading dimension ``num_envs``); arrays are float64."""

    #: Joint angles, shape (num_envs, ACTION_DIM), order JOINT_NAMES.
    joint_angles: FloatArray
    #: Joint angular velocities, shape (num_envs, ACTION_DIM).
    joint_velocities: FloatArray
    #: Torso pitch (rad, positive leans forward), shape (num_envs,).
    torso_pitch: FloatArray
    #: Torso pitch rate (rad/s), shape (num_envs,).
    torso_pitch_rate: FloatArray
    #: Root forward speed in the heading frame (m/s), shape (num_envs,).
    forward_velocity: FloatArray
    #: Pelvis vertical velocity (m/s), shape (num_envs,).
    vertical_velocity: FloatArray
    #: Root yaw rate (rad/s), shape (num_envs,).
    yaw_rate: FloatArray
    #: Pelvis height above the ground (m), shape (num_envs,).
    pelvis_height: FloatArray
    #: Root position in the world plane (m), shape (num_envs, 2).
    position: FloatArray
    #: Root heading (rad), shape (num_envs,).
    heading: FloatArray


def amp_observation(state: MotionState) -> Float32Array:
    """Return the per-env AMP frame, shape ``(num_envs, AMP_FRAME_DIM)``, float32.

    The layout is :data:`AMP_FRAME_FIELDS`, identical to :attr:`MotionClip.frames` rows.
    ``info["amp_obs"]`` is ``concat(frame(s_t), frame(s_t+1))`` along the last axis.
    """
    out = np.empty((state.joint_angles.shape[0], AMP_FRAME_DIM), dtype=np.float32)
    _fill_amp(
        out,
        state.joint_angles,
        state.joint_velocities,
        state.torso_pitch,
        state.torso_pitch_rate,
        state.forward_velocity,
        state.vertical_velocity,
        state.yaw_rate,
        state.pelvis_height,
    )
    return out


def _fill_amp(
    out: NDArray[Any],
    q: FloatArray,
    qd: FloatArray,
    pitch: FloatArray,
    pitch_rate: FloatArray,
    speed: FloatArray,
    vertical: FloatArray,
    yaw_rate: FloatArray,
    height: FloatArray,
) -> None:
    """Write AMP frames (layout AMP_FRAME_FIELDS) into the first columns of ``out``."""
    out[:, 0:4] = q
    out[:, 4:8] = qd
    out[:, 8] = pitch
    out[:, 9] = pitch_rate
    out[:, 10] = speed
    out[:, 11] = vertical
    out[:, 12] = yaw_rate
    out[:, 13] = height


def _leg_kinematics(
    q: FloatArray, qd: FloatArray, thigh: float, shank: float
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Return leg (vertical extent, forward foot offset in leg lengths, forward foot velocity).

    Each has shape (..., 2) for (left, right); offsets and velocities are pelvis-relative.
    """
    hips = q[..., _HIPS]
    angles = np.concatenate((hips, hips - q[..., _KNEES]), axis=-1)
    cos = np.cos(angles)
    sin = np.sin(angles)
    hip_rate = qd[..., _HIPS]
    extent = thigh * cos[..., :2] + shank * cos[..., 2:]
    offset = (thigh * sin[..., :2] + shank * sin[..., 2:]) * (1.0 / (thigh + shank))
    velocity = thigh * cos[..., :2] * hip_rate + shank * cos[..., 2:] * (hip_rate - qd[..., _KNEES])
    return extent, offset, velocity


def _action_scale(cfg: MotionConfig) -> FloatArray:
    """Per-joint PD-target scale: ``target = action * scale + offset``."""
    return np.array([cfg.hip_range, cfg.knee_range / 2] * 2, dtype=np.float64)


def _action_offset(cfg: MotionConfig) -> FloatArray:
    """Per-joint PD-target offset: ``target = action * scale + offset``."""
    return np.array([0.0, cfg.knee_range / 2] * 2, dtype=np.float64)


def _contacts(extent: FloatArray, band: float) -> tuple[FloatArray, FloatArray]:
    """Return (pelvis height, contact weights in [0, 1] per leg) from leg extents."""
    height = extent.max(axis=-1)
    contact = 1.0 - (height[..., None] - extent) / band
    np.clip(contact, 0.0, 1.0, out=contact)
    return height, contact


class MotionEnv(VectorEnv[Float32Array, Float32Array, NDArray[Any]]):
    """Vectorised planar AMP character with a moving-target tracking task.

    See the module docstring for the dynamics, the task, the batched spaces and the
    same-step autoreset semantics. ``config`` fixes ``num_envs``.
    """

    metadata: dict[str, Any] = {"autoreset_mode": AutoresetMode.SAME_STEP}  # noqa: RUF012

    def __init__(self, config: MotionConfig | None = None) -> None:
        """Build the batched spaces and allocate state; call :meth:`reset` before stepping."""
        self.config = config if config is not None else MotionConfig()
        cfg = self.config
        n = cfg.num_envs
        self.num_envs = n
        self.single_observation_space = spaces.Box(
            -np.inf, np.inf, shape=(OBS_DIM,), dtype=np.float32
        )
        self.single_action_space = spaces.Box(-1.0, 1.0, shape=(ACTION_DIM,), dtype=np.float32)
        self.observation_space = spaces.Box(-np.inf, np.inf, shape=(n, OBS_DIM), dtype=np.float32)
        self.action_space = spaces.Box(-1.0, 1.0, shape=(n, ACTION_DIM), dtype=np.float32)

        self._target_scale = _action_scale(cfg)
        self._target_offset = _action_offset(cfg)
        self._q_low = np.array([-math.pi / 2, 0.0] * 2, dtype=np.float64)
        self._q_high = np.array([math.pi / 2, 2.5] * 2, dtype=np.float64)

        zeros = np.zeros
        self._q = zeros((n, ACTION_DIM))
        self._qd = zeros((n, ACTION_DIM))
        self._pitch = zeros(n)
        self._pitch_rate = zeros(n)
        self._speed = zeros(n)
        self._yaw_rate = zeros(n)
        self._height = zeros(n)
        self._vertical = zeros(n)
        self._contact = zeros((n, 2))
        self._pos = zeros((n, 2))
        self._heading = zeros(n)
        self._target_pos = zeros((n, 2))
        self._target_heading = zeros(n)
        self._target_speed = zeros(n)
        self._turn_amp = zeros((n, 2))
        self._turn_freq = zeros((n, 2))
        self._turn_phase = zeros((n, 2))
        self._steps = zeros(n, dtype=np.int64)
        self._return = zeros(n)
        self._amp = np.zeros((n, AMP_FRAME_DIM), dtype=np.float32)
        self._needs_reset = True

    # ------------------------------------------------------------------ public API
    @property
    def state(self) -> MotionState:
        """Snapshot (copies) of the current batched physical state."""
        return MotionState(
            joint_angles=self._q.copy(),
            joint_velocities=self._qd.copy(),
            torso_pitch=self._pitch.copy(),
            torso_pitch_rate=self._pitch_rate.copy(),
            forward_velocity=self._speed.copy(),
            vertical_velocity=self._vertical.copy(),
            yaw_rate=self._yaw_rate.copy(),
            pelvis_height=self._height.copy(),
            position=self._pos.copy(),
            heading=self._heading.copy(),
        )

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[Float32Array, dict[str, Any]]:
        """Reset all envs; ``seed`` reseeds the generator. Returns ``(obs, {})``.

        ``obs`` has shape ``(num_envs, OBS_DIM)``. ``options`` is accepted and ignored.
        """
        super().reset(seed=seed)
        self._reset_envs(np.arange(self.num_envs))
        self._needs_reset = False
        return self._observe(), {}

    def step(
        self, actions: NDArray[Any]
    ) -> tuple[Float32Array, Float32Array, BoolArray, BoolArray, dict[str, Any]]:
        """Advance every env by ``dt`` with PD-target ``actions`` (num_envs, ACTION_DIM).

        Actions are clipped to ``[-1, 1]``. Finished envs are reset in the same call; see
        the module docstring for the returned ``info`` keys.
        """
        if self._needs_reset:
            raise RuntimeError("MotionEnv.step called before reset")
        cfg = self.config
        dt = cfg.dt
        a = np.asarray(actions, dtype=np.float64)
        if a.shape != (self.num_envs, ACTION_DIM):
            raise ValueError(
                f"actions must have shape {(self.num_envs, ACTION_DIM)}, got {a.shape}"
            )
        if not np.isfinite(a).all():
            raise ValueError("actions must be finite")
        a = np.clip(a, -1.0, 1.0)
        q, qd, contact = self._q, self._qd, self._contact
        prev_amp = self._amp

        # Joint PD with contact-dependent inertia, semi-implicit Euler, hard limits.
        torque = cfg.joint_stiffness * (a * self._target_scale + self._target_offset - q)
        torque -= cfg.joint_damping * qd
        np.clip(torque, -cfg.max_torque, cfg.max_torque, out=torque)
        inv_inertia = 1.0 / (1.0 + cfg.stance_inertia * np.repeat(contact, 2, axis=1))
        qd += dt * torque * inv_inertia
        q_free = q + dt * qd
        np.clip(q_free, self._q_low, self._q_high, out=q)
        qd *= q == q_free

        # Kinematics, contacts, traction-driven root motion.
        extent, foot_offset, foot_velocity = _leg_kinematics(
            q, qd, cfg.thigh_length, cfg.shank_length
        )
        height, contact = _contacts(extent, cfg.contact_band)
        self._contact = contact
        push = contact * -foot_velocity
        inv_support = 1.0 / contact.sum(axis=1)
        accel = cfg.traction_rate * (push.sum(axis=1) * inv_support - self._speed)
        np.clip(accel, -cfg.max_traction_accel, cfg.max_traction_accel, out=accel)
        self._speed += dt * accel
        yaw_target = cfg.yaw_coupling * (push[:, 1] - push[:, 0]) * inv_support
        self._yaw_rate += (dt * cfg.yaw_rate_gain) * (yaw_target - self._yaw_rate)
        self._heading += dt * self._yaw_rate
        self._pos[:, 0] += dt * self._speed * np.cos(self._heading)
        self._pos[:, 1] += dt * self._speed * np.sin(self._heading)
        self._vertical = (height - self._height) * (1.0 / dt)
        self._height = height

        # Torso: inverted pendulum over the support feet.
        support = (contact * foot_offset).sum(axis=1) * inv_support
        pitch_acc = cfg.torso_gravity * np.sin(self._pitch)
        pitch_acc -= cfg.torso_damping * self._pitch_rate
        pitch_acc -= cfg.support_gain * support
        pitch_acc -= cfg.accel_coupling * accel
        self._pitch_rate += dt * pitch_acc
        self._pitch += dt * self._pitch_rate

        # Moving target along its curving path.
        self._steps += 1
        t = (self._steps * dt)[:, None]
        turn = (self._turn_amp * np.sin(self._turn_freq * t + self._turn_phase)).sum(axis=1)
        self._target_heading += dt * turn
        step_len = dt * self._target_speed
        self._target_pos[:, 0] += step_len * np.cos(self._target_heading)
        self._target_pos[:, 1] += step_len * np.sin(self._target_heading)

        delta = self._target_pos - self._pos
        error = np.sqrt((delta * delta).sum(axis=1))
        reward = np.exp(error * (-1.0 / cfg.reward_distance_scale))
        self._return += reward
        terminated = np.abs(self._pitch) > cfg.fall_angle
        truncated = (self._steps >= cfg.max_episode_steps) & ~terminated

        obs = self._observe()
        amp_obs = np.concatenate((prev_amp, self._amp), axis=1)
        done = terminated | truncated
        final_obs = obs.copy()
        info: dict[str, Any] = {
            "amp_obs": amp_obs,
            "tracking_error": error,
            "fell": terminated.copy(),
            "final_obs": final_obs,
            "_final_obs": done,
            "episode_return": np.where(done, self._return, 0.0),
            "episode_length": np.where(done, self._steps, 0),
        }
        if done.any():
            idx = np.flatnonzero(done)
            self._reset_envs(idx)
            obs[idx] = self._observe()[idx]
        return obs, reward.astype(np.float32), terminated, truncated, info

    # ------------------------------------------------------------------ internals
    def _reset_envs(self, idx: NDArray[np.intp]) -> None:
        """Draw fresh initial states and target paths for the envs in ``idx``."""
        cfg = self.config
        rng = self.np_random
        k = idx.size
        noise = cfg.init_noise
        q = np.tile(np.array([0.0, 0.1, 0.0, 0.1]), (k, 1))
        q += rng.uniform(-noise, noise, size=(k, ACTION_DIM))
        np.clip(q, self._q_low, self._q_high, out=q)
        self._q[idx] = q
        self._qd[idx] = 0.0
        self._pitch[idx] = rng.uniform(-noise, noise, size=k)
        self._pitch_rate[idx] = 0.0
        self._speed[idx] = 0.0
        self._yaw_rate[idx] = 0.0
        self._vertical[idx] = 0.0
        extent, _, _ = _leg_kinematics(q, np.zeros_like(q), cfg.thigh_length, cfg.shank_length)
        height, contact = _contacts(extent, cfg.contact_band)
        self._height[idx] = height
        self._contact[idx] = contact
        self._pos[idx] = 0.0
        heading = rng.uniform(-math.pi, math.pi, size=k)
        self._heading[idx] = heading
        self._target_pos[idx] = 0.0
        self._target_heading[idx] = heading
        self._target_speed[idx] = rng.uniform(cfg.target_speed_min, cfg.target_speed_max, k)
        self._turn_amp[idx] = rng.uniform(-0.5, 0.5, size=(k, 2)) * cfg.target_turn_rate
        self._turn_freq[idx] = rng.uniform(0.3, 1.2, size=(k, 2))
        self._turn_phase[idx] = rng.uniform(0.0, 2.0 * math.pi, size=(k, 2))
        self._steps[idx] = 0
        self._return[idx] = 0.0

    def _observe(self) -> Float32Array:
        """Build observations (num_envs, OBS_DIM) and refresh the cached AMP frame."""
        cfg = self.config
        obs = np.empty((self.num_envs, OBS_DIM), dtype=np.float32)
        _fill_amp(
            obs,
            self._q,
            self._qd,
            self._pitch,
            self._pitch_rate,
            self._speed,
            self._vertical,
            self._yaw_rate,
            self._height,
        )
        self._amp = obs[:, :AMP_FRAME_DIM].copy()
        obs[:, 14:16] = self._contact
        cos_h = np.cos(self._heading)
        sin_h = np.sin(self._heading)
        dx = self._target_pos[:, 0] - self._pos[:, 0]
        dy = self._target_pos[:, 1] - self._pos[:, 1]
        lim = cfg.obs_target_clip
        obs[:, 16] = np.clip(cos_h * dx + sin_h * dy, -lim, lim)
        obs[:, 17] = np.clip(cos_h * dy - sin_h * dx, -lim, lim)
        rel = self._target_heading - self._heading
        obs[:, 18] = np.sin(rel)
        obs[:, 19] = np.cos(rel)
        obs[:, 20] = self._target_speed
        obs[:, 21] = self._steps * (1.0 / cfg.max_episode_steps)
        return obs


# ---------------------------------------------------------------------- reference motion
_CLIP_STYLES: Final[tuple[str, ...]] = ("walk", "trot", "turn_left", "turn_right")


def _gait_joint_trajectory(
    phase: FloatArray,
    phase_rate: float,
    hip_amp_left: float | FloatArray,
    hip_amp_right: float | FloatArray,
    hip_bias: float | FloatArray,
    knee_amp: float | FloatArray,
    knee_lag: float,
    knee_base: float,
) -> tuple[FloatArray, FloatArray]:
    """Parametric gait family: joint angles and velocities, shape (*phase.shape, ACTION_DIM).

    Legs are half a cycle apart (``hip = bias + amp sin(phase)``); each knee flexes
    (``base + amp bump^2`` with a raised-cosine bump) while its hip swings forward,
    lagging the hip velocity peak by ``knee_lag`` radians of phase. Parameters broadcast
    against ``phase``. Used both for the reference clips and by :class:`GaitController`.
    """
    q = np.empty((*phase.shape, ACTION_DIM))
    qd = np.empty((*phase.shape, ACTION_DIM))
    for leg, (offset, amp) in enumerate(((0.0, hip_amp_left), (math.pi, hip_amp_right))):
        p = phase + offset
        q[..., 2 * leg] = hip_bias + amp * np.sin(p)
        qd[..., 2 * leg] = amp * phase_rate * np.cos(p)
        bump = 0.5 * (1.0 + np.cos(p - knee_lag))
        q[..., 2 * leg + 1] = knee_base + knee_amp * bump * bump
        qd[..., 2 * leg + 1] = -knee_amp * bump * np.sin(p - knee_lag) * phase_rate
    return q, qd


def _clip_frames(
    q: FloatArray,
    qd: FloatArray,
    pitch: FloatArray,
    pitch_rate: FloatArray,
    cfg: MotionConfig,
    warmup: int,
) -> Float32Array:
    """Turn joint trajectories into AMP frames using the simulator's own kinematics."""
    extent, _, foot_velocity = _leg_kinematics(q, qd, cfg.thigh_length, cfg.shank_length)
    height, contact = _contacts(extent, cfg.contact_band)
    push = contact * -foot_velocity
    inv_support = 1.0 / contact.sum(axis=1)
    speed_target = push.sum(axis=1) * inv_support
    yaw_target = cfg.yaw_coupling * (push[:, 1] - push[:, 0]) * inv_support
    t = q.shape[0]
    speed = np.zeros(t)
    yaw_rate = np.zeros(t)
    v = float(speed_target[:warmup].mean())
    w = 0.0
    for i in range(t):
        acc = cfg.traction_rate * (speed_target[i] - v)
        acc = min(max(acc, -cfg.max_traction_accel), cfg.max_traction_accel)
        v += cfg.dt * acc
        w += cfg.dt * cfg.yaw_rate_gain * (yaw_target[i] - w)
        speed[i] = v
        yaw_rate[i] = w
    vertical = np.zeros(t)
    vertical[1:] = np.diff(height) / cfg.dt
    frames = np.empty((t, AMP_FRAME_DIM), dtype=np.float32)
    _fill_amp(frames, q, qd, pitch, pitch_rate, speed, vertical, yaw_rate, height)
    return frames[warmup:]


def make_reference_clips(
    seed: int,
    n_clips: int = 8,
    num_frames: int = 120,
    config: MotionConfig | None = None,
) -> list[MotionClip]:
    """Generate ``n_clips`` reference gait clips of ``num_frames`` AMP frames each.

    Styles cycle through walk, trot (faster, larger strides, more knee), turn_left and
    turn_right (asymmetric strides). Joint angles are phase-offset sinusoids; the root
    velocities, pelvis height and contacts are derived with the simulator's kinematics
    and traction model, so the frames are physically consistent with :class:`MotionEnv`
    transitions at ``config.dt``. Deterministic in ``seed``.
    """
    if n_clips < 1:
        raise ValueError(f"n_clips must be >= 1, got {n_clips}")
    if num_frames < 2:
        raise ValueError(f"num_frames must be >= 2, got {num_frames}")
    cfg = config if config is not None else MotionConfig()
    rng = np.random.default_rng(seed)
    warmup = max(1, round(1.0 / cfg.dt))
    clips: list[MotionClip] = []
    for i in range(n_clips):
        style = _CLIP_STYLES[i % len(_CLIP_STYLES)]
        if style == "trot":
            freq = rng.uniform(1.4, 1.7)
            amp = rng.uniform(0.25, 0.35)
            knee = rng.uniform(1.2, 1.5)
            lean = rng.uniform(0.04, 0.1)
        else:
            freq = rng.uniform(1.0, 1.3)
            amp = rng.uniform(0.15, 0.3)
            knee = rng.uniform(0.8, 1.3)
            lean = rng.uniform(0.0, 0.05)
        ratio = rng.uniform(0.5, 0.8)
        hip_left, hip_right = {
            "turn_left": (amp * ratio, amp),
            "turn_right": (amp, amp * ratio),
        }.get(style, (amp, amp))
        rate = 2.0 * math.pi * freq
        t = (np.arange(num_frames + warmup, dtype=np.float64) - warmup) * cfg.dt
        phase: FloatArray = rate * t + rng.uniform(0.0, 2.0 * math.pi)
        q, qd = _gait_joint_trajectory(
            phase,
            rate,
            hip_left,
            hip_right,
            hip_bias=rng.uniform(-0.05, 0.05),
            knee_amp=knee,
            knee_lag=rng.uniform(-0.2, 0.2),
            knee_base=rng.uniform(0.05, 0.15),
        )
        bob = rng.uniform(0.0, 0.03)
        pitch = lean + bob * np.sin(2.0 * phase)
        pitch_rate = 2.0 * rate * bob * np.cos(2.0 * phase)
        frames = _clip_frames(q, qd, pitch, pitch_rate, cfg, warmup)
        clips.append(
            MotionClip(
                name=style,
                frames=frames,
                dt=cfg.dt,
                frequency=float(freq),
                speed=float(frames[:, 10].mean()),
            )
        )
    return clips


def sample_reference_transitions(
    clips: list[MotionClip], n: int, rng: np.random.Generator
) -> Float32Array:
    """Sample ``n`` reference transitions, shape ``(n, AMP_TRANSITION_DIM)``, float32.

    Each row is ``concat(frames[k], frames[k + 1])`` from a clip chosen with probability
    proportional to its number of transitions: the discriminator's "real" data, in the
    same layout as ``info["amp_obs"]``.
    """
    if not clips:
        raise ValueError("clips must be non-empty")
    counts = np.array([clip.frames.shape[0] - 1 for clip in clips], dtype=np.int64)
    if (counts < 1).any():
        raise ValueError("every clip needs at least two frames")
    flat = rng.integers(0, int(counts.sum()), size=n)
    starts = np.concatenate(([0], np.cumsum(counts)))
    which = np.searchsorted(starts, flat, side="right") - 1
    out = np.empty((n, AMP_TRANSITION_DIM), dtype=np.float32)
    for c, clip in enumerate(clips):
        rows = np.flatnonzero(which == c)
        if rows.size:
            k = flat[rows] - starts[c]
            out[rows, :AMP_FRAME_DIM] = clip.frames[k]
            out[rows, AMP_FRAME_DIM:] = clip.frames[k + 1]
    return out


# ---------------------------------------------------------------------- control & eval
class GaitController:
    """Hand-written periodic gait controller; a memoryless function of the observation.

    It PD-tracks the same parametric gait family as the reference clips
    (:func:`make_reference_clips`), phased by the episode clock that the observation
    carries (``episode_progress``), so it needs no internal state and works unchanged
    across autoresets. Feedback on top of the open-loop gait:

    * speed: knee lift (which stops the swing foot dragging) grows with the target speed
      plus ``speed_gain`` times the target's forward offset;
    * steering: left/right hip strokes become asymmetric towards the target's bearing;
    * balance: both hips are biased by ``balance_stiffness phi + balance_damping phi'``,
      i.e. feet are placed ahead of the pelvis when the torso leans forward.
    """

    def __init__(
        self,
        config: MotionConfig | None = None,
        *,
        frequency: float = 1.2,
        hip_amplitude: float = 0.2,
        knee_base: float = 0.3,
        knee_per_speed: float = 1.1,
        speed_gain: float = 1.5,
        steer_gain: float = 0.8,
        max_steer: float = 0.5,
        balance_stiffness: float = 1.0,
        balance_damping: float = 0.3,
    ) -> None:
        """Store gains; defaults are tuned for the default :class:`MotionConfig`."""
        self.config = config if config is not None else MotionConfig()
        self.frequency = frequency
        self.hip_amplitude = hip_amplitude
        self.knee_base = knee_base
        self.knee_per_speed = knee_per_speed
        self.speed_gain = speed_gain
        self.steer_gain = steer_gain
        self.max_steer = max_steer
        self.balance_stiffness = balance_stiffness
        self.balance_damping = balance_damping

    def __call__(self, obs: NDArray[Any]) -> Float32Array:
        """Map observations (batch, OBS_DIM) to PD-target actions (batch, ACTION_DIM)."""
        cfg = self.config
        o = np.asarray(obs, dtype=np.float64)
        time = o[:, 21] * (cfg.max_episode_steps * cfg.dt)
        phase = (2.0 * math.pi * self.frequency) * time
        forward, left = o[:, 16], o[:, 17]
        want_speed = o[:, 20] + self.speed_gain * forward
        knee = np.clip(self.knee_base + self.knee_per_speed * want_speed, 0.4, 1.7)
        bearing = np.arctan2(left, np.maximum(forward, 0.2))
        steer = np.clip(self.steer_gain * bearing, -self.max_steer, self.max_steer)
        balance = self.balance_stiffness * o[:, 8] + self.balance_damping * o[:, 9]
        target, _ = _gait_joint_trajectory(
            phase,
            0.0,
            hip_amp_left=self.hip_amplitude * (1.0 - steer),
            hip_amp_right=self.hip_amplitude * (1.0 + steer),
            hip_bias=balance,
            knee_amp=knee,
            knee_lag=0.0,
            knee_base=0.1,
        )
        action = (target - _action_offset(cfg)) / _action_scale(cfg)
        return np.clip(action, -1.0, 1.0).astype(np.float32)


def evaluate(
    policy_fn: Callable[[Float32Array], NDArray[Any]],
    seed: int,
    n_trials: int,
    config: MotionConfig | None = None,
) -> dict[str, float | int]:
    """Run ``n_trials`` independent episodes (one batch, seeded) and summarise them.

    ``policy_fn`` maps a batch of observations ``(n_trials, OBS_DIM)`` to actions
    ``(n_trials, ACTION_DIM)``. A trial is a *success* when the character does not fall
    for the whole ``max_episode_steps`` and ends within ``success_tolerance`` metres of
    the target. Returns ``num_trials``, ``success_trials``, ``fail_trials``
    (``success_trials + fail_trials == num_trials``), ``success_rate``,
    ``success_precision`` (mean per-step task reward in [0, 1] averaged over successful
    trials; 0.0 when there are none), plus ``fall_trials``, ``mean_episode_length``,
    ``mean_episode_return`` (summed task reward per trial), ``mean_task_reward`` (per
    step, over all trials) and ``mean_final_error`` (metres). Each trial is the first
    episode of one env of a ``MotionEnv`` with ``num_envs = n_trials`` reset with
    ``seed``, so results are deterministic for a deterministic ``policy_fn``.
    """
    if n_trials < 1:
        raise ValueError(f"n_trials must be >= 1, got {n_trials}")
    cfg = replace(config if config is not None else MotionConfig(), num_envs=n_trials)
    env = MotionEnv(cfg)
    obs, _ = env.reset(seed=seed)
    finished = np.zeros(n_trials, dtype=bool)
    fell = np.zeros(n_trials, dtype=bool)
    length = np.zeros(n_trials)
    ret = np.zeros(n_trials)
    final_error = np.zeros(n_trials)
    for _ in range(cfg.max_episode_steps):
        obs, _reward, terminated, truncated, info = env.step(policy_fn(obs))
        ended = (terminated | truncated) & ~finished
        if ended.any():
            fell[ended] = terminated[ended]
            length[ended] = info["episode_length"][ended]
            ret[ended] = info["episode_return"][ended]
            final_error[ended] = info["tracking_error"][ended]
            finished |= ended
        if finished.all():
            break
    success = ~fell & (final_error <= cfg.success_tolerance)
    precision = ret / np.maximum(length, 1.0)
    n_success = int(success.sum())
    return {
        "num_trials": n_trials,
        "success_trials": n_success,
        "fail_trials": n_trials - n_success,
        "success_rate": n_success / n_trials,
        "success_precision": float(precision[success].mean()) if n_success else 0.0,
        "fall_trials": int(fell.sum()),
        "mean_episode_length": float(length.mean()),
        "mean_episode_return": float(ret.mean()),
        "mean_task_reward": float(ret.sum() / max(length.sum(), 1.0)),
        "mean_final_error": float(final_error.mean()),
    }
