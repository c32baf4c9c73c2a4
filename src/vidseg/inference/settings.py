"""Each model family's official test-time settings: what its paper's test script feeds the model.

A registry entry carries one :class:`InferenceSettings` (``ModelEntry.test``); ``vidseg segment``, ``predict``,
``pseudo-label`` and ``export`` use it unless the user overrides a field, and ``vidseg models --json`` shows it.
The facts (``specs/models.md`` §1.5-1.7, §2.6, §3 and the official repositories):

* CFFM (VSS-CFFM ``local_configs/_base_/datasets/vspw_repeat2.py``): ``MultiScaleFlipAug(img_scale=(853, 480))``
  + ``AlignedResize_clips(keep_ratio, size_divisor=32)``, mmcv normalisation, clips [t-9, t-6, t-3, t] with the
  hard-coded early clips. Its ``tools/test.py --aug-test`` does not run for CFFM (``aug_test`` calls
  ``inference`` without ``num_clips``: TypeError), so ``--tta`` on CFFM is vidseg's own multi-scale test.
* SegFormer (NVlabs/SegFormer ``ade20k_repeat.py``, and VSS-CFFM's SegFormer VSPW configs): img_scale
  (2048, 512) for ADE20K, (853, 480) for the VSPW configs, size_divisor 32; ``--aug-test`` ratios per dataset.
* TCB (sssdddwww2/CVPR2021_VSPW_Implement ``test_clip2.py`` + ``dataset2.py`` via
  ``scripts/run_temporal_{psp,ocr}.sh``): frames at their own size (VSPW 480p), ``x / 255`` then torchvision
  ``Normalize``, future supports t+3/6/9 (past near the end: ``--mode offline``), the object-region memory
  on (``USEMEMORY=True``, the official FIFO rule), negative support indices wrapping to the end of short
  videos (``short_video="wrap"``). No multi-scale test in the official code.
* Clip-PanoFCN / PanopticFCN (VIPSeg-Dataset ``eval_net_video.py`` + ``VideoClipTestNooverlapDataset``, §4.4):
  the raw frames at their own size (MIN/MAX_SIZE_TEST unused on this path; the model zero-pads to multiples of 32
  itself, no stretch), detectron2 ``PIXEL_MEAN`` subtracted with ``PIXEL_STD`` 1 on 0..255 RGB, non-overlapping
  clips of 3 (a frame sees the later frames of its clip: ``offline``); ``panofcn_r50`` runs frame by frame
  (``online``). :class:`vidseg.inference.panoptic.PanopticVideoPredictor` normalises with :data:`PANOFCN_TEST`.
* STCNN (longyin880815/STCNN ``DAVIS_dataloader.py`` test + ``train_online_dream.py``, §5.7): the 480p frames
  as they are (no resize), the frame ``x / 255`` then ImageNet mean/std (torchvision), the previous delta frames
  (``online``) as a temporal stack ``x / 127.5 - 1`` that no setting changes.
  :class:`vidseg.inference.vos.StcnnVosPredictor` normalises the frame with :data:`STCNN_TEST`.

The panoptic and object predictors take no test options (``vidseg segment`` refuses them for those models); their
settings say what the official test does and are what the predictors apply.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from typing import Any

from vidseg.data.sampling import SHORT_VIDEO_RULES
from vidseg.data.transforms import NORMALIZATIONS, Normalization
from vidseg.errors import ConfigError
from vidseg.inference.rules import MODES
from vidseg.inference.tta import TTA, TTA_SCALES


@dataclass(frozen=True)
class InferenceSettings:
    """How a model's official test prepares frames and picks clips.

    Attributes:
        img_scale: (long, short) keep-ratio test scale of ``AlignedResize``; None keeps the frame size.
        size_divisor: the second resize stretches to multiples of this (1: none).
        normalization: a key of :data:`vidseg.data.transforms.NORMALIZATIONS` (``"mmseg"``, ``"torchvision"``,
            ``"detectron2"``).
        mode: ``"online"`` (past frames only) or ``"offline"`` (TCB's future supports).
        short_video: TCB's rule for supports before frame 0 in the official protocol: ``"wrap"`` (official,
            :class:`vidseg.data.sampling.TCBSampler`) or ``"clamp"``. ``vidseg segment`` (user videos) clamps
            unless asked; ``vidseg predict`` (benchmark folders) uses this value.
        model_kwargs: build arguments the official test implies (TCB-OCR-mem: ``{"memory": "official"}``).
        tta_dataset: the key of :data:`vidseg.inference.tta.TTA_SCALES` whose ratios ``--tta`` uses.
        official_tta: whether the official code has a working multi-scale test for this model.
        source: the official script/config these settings come from.
    """

    img_scale: tuple[int, int] | None = None
    size_divisor: int = 1
    normalization: str = "mmseg"
    mode: str = "online"
    short_video: str = "clamp"
    model_kwargs: dict[str, Any] = field(default_factory=dict)
    tta_dataset: str = "vspw"
    official_tta: bool = True
    source: str = ""

    def __post_init__(self) -> None:
        if self.normalization not in NORMALIZATIONS:
            raise ConfigError(f"normalization must be one of {sorted(NORMALIZATIONS)}, got {self.normalization!r}")
        if self.mode not in MODES:
            raise ConfigError(f"mode must be one of {MODES}, got {self.mode!r}")
        if self.short_video not in SHORT_VIDEO_RULES:
            raise ConfigError(f"short_video must be one of {SHORT_VIDEO_RULES}, got {self.short_video!r}")
        if self.tta_dataset not in TTA_SCALES:
            raise ConfigError(f"tta_dataset must be one of {sorted(TTA_SCALES)}, got {self.tta_dataset!r}")
        if self.size_divisor < 1:
            raise ConfigError(f"size_divisor must be >= 1, got {self.size_divisor}")

    @property
    def norm(self) -> Normalization:
        """The :class:`Normalization` named by ``normalization``."""
        return NORMALIZATIONS[self.normalization]

    def tta(self) -> TTA:
        """The multi-scale + flip test of ``tta_dataset``."""
        return TTA.for_dataset(self.tta_dataset)

    def with_overrides(self, **overrides: Any) -> InferenceSettings:
        """A copy with the fields the user gave (None values are ignored)."""
        return replace(self, **{k: v for k, v in overrides.items() if v is not None})

    def predictor_options(self, *, tta: bool = False) -> dict[str, Any]:
        """Keyword arguments of :class:`vidseg.inference.VideoPredictor` for these settings."""
        return {"mode": self.mode, "img_scale": self.img_scale, "size_divisor": self.size_divisor,
                "normalization": self.norm, "short_video": self.short_video, "tta": self.tta() if tta else None}

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready fields (``img_scale`` as a list or None)."""
        out = asdict(self)
        out["img_scale"] = list(self.img_scale) if self.img_scale is not None else None
        return out


def training_eval_settings(official: InferenceSettings, train_scale: tuple[int, int] | None) -> InferenceSettings:
    """The test settings of training-time evaluation: the official ones (what ``segment`` and ``predict`` use),
    with the recipe's training scale as the test scale when the official test resizes.

    The official mmseg configs test at the ``img_scale`` they train at (CFFM and SegFormer on VSPW: 853x480,
    SegFormer on ADE20K: 2048x512), so for the shipped recipes (``data.base_size`` 853x480) this is the official
    VSPW test scale; a smoke run or the demo shrinks training and evaluation together. Official tests at the
    native size (TCB, the ResNet baselines, STSC) stay at the native size. The clip mode, normalisation and TCB's
    short-video rule are the official ones (as ``vidseg predict``); ``model_kwargs`` are not applied (the trained
    model is evaluated as it was built).

    Args:
        official: the entry's official settings (:func:`vidseg.models.official_settings`).
        train_scale: the recipe's keep-ratio training scale (``data.base_size``, order-free), or None.
    """
    if official.img_scale is None or train_scale is None:
        return official
    return replace(official, img_scale=(max(train_scale), min(train_scale)))


CFFM_TEST = InferenceSettings(img_scale=(853, 480), size_divisor=32, official_tta=False,
                         source="VSS-CFFM local_configs/_base_/datasets/vspw_repeat2.py test_pipeline")
SEGFORMER_ADE_TEST = InferenceSettings(img_scale=(2048, 512), size_divisor=32, tta_dataset="ade20k",
                                  source="NVlabs/SegFormer local_configs/_base_/datasets/ade20k_repeat.py test_pipeline")
SEGFORMER_VSPW_TEST = InferenceSettings(img_scale=(853, 480), size_divisor=32,
                                   source="VSS-CFFM local_configs/_base_/datasets/vspw_repeat2_forFLOW_"
                                          "newPhotoMetricDistortion.py test_pipeline")
TCB_TEST = InferenceSettings(normalization="torchvision", mode="offline", short_video="wrap", official_tta=False,
                        source="CVPR2021_VSPW_Implement test_clip2.py + dataset2.py TestDataset_longclip "
                               "(scripts/run_temporal_*.sh)")
TCB_MEM_TEST = replace(TCB_TEST, model_kwargs={"memory": "official"})
VSPW_IMAGE_TEST = InferenceSettings(normalization="torchvision", official_tta=False,
                               source="CVPR2021_VSPW_Implement test.py + dataset2.py TestDataset (scripts/run_psp.sh)")
PLAIN_TEST = InferenceSettings(source="no official test script in vidseg's references: frames as they are")
PANOFCN_TEST = InferenceSettings(normalization="detectron2", mode="offline", official_tta=False,
                                source="VIPSeg-Dataset eval_net_video.py + VideoClipTestNooverlapDataset (native "
                                       "size, padded to 32 in the model; clips of 3)")
PANOFCN_FRAMES_TEST = replace(PANOFCN_TEST, mode="online",
                              source="vidseg: the Clip-PanoFCN test input frame by frame + IoU association "
                                     "(VIPSeg §3.4.1); the official image-model test is not in vidseg's references")
STCNN_TEST = InferenceSettings(normalization="torchvision", official_tta=False,
                               source="STCNN dataloaders/DAVIS_dataloader.py test + train_online_dream.py (native "
                                      "480p, previous delta frames as x/127.5-1)")
