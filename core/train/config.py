"""TrainConfig: every training option, validated, stored in every checkpoint and result."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields

ARCHITECTURES = ("gru", "lstm", "tcn", "bcresnet")
GATE_ACTIVATIONS = ("sigmoid", "hard_sigmoid")
OPTIMIZERS = ("rmsprop", "adam", "adamw", "sgd")
TEACHER_MODES = ("online", "dataset")
TARGET_FRAMES = ("last", "peak")
SCHEDULERS = ("none", "step", "exponential", "cosine", "onecycle", "triangle")


@dataclass(frozen=True)
class TrainConfig:
    architecture: str = "gru"
    num_layers: int = 2
    hidden_size: int = 128
    # RNN gates: PyTorch's sigmoid, or ELL's hard sigmoid clip(0.2 x + 0.5, 0, 1) (GRU only)
    gate_activation: str = "sigmoid"
    # tcn: channels per block and kernel size over time (causal, dilated 1, 2, 4, ...)
    tcn_channels: int = 64
    tcn_kernel: int = 3
    # bcresnet (broadcasted residual blocks over (frequency, time), causal in time): base channel
    # width of the four stages (x1, x1.5, x2, x2.5) and residual blocks per stage
    bc_channels: int = 16
    bc_blocks: int = 1
    dropout: float = 0.0
    epochs: int = 30
    batch_size: int = 128
    optimizer: str = "rmsprop"
    learning_rate: float = 1e-3
    weight_decay: float = 1e-5
    momentum: float = 0.0
    scheduler: str = "none"
    lr_step_size: int = 10
    lr_gamma: float = 0.5
    lr_min: float = 1e-5
    normalize: bool = False
    spec_augment: bool = False
    label_smoothing: float = 0.0
    # probability that a batch is trained after unrelated context (another row's frames played
    # first, state carried): teaches the model to recover in a continuous stream
    context_prob: float = 0.0
    context_rows: int = 1  # the context is the tail of up to this many other rows (continuous streams)
    # which frame of a row carries its label. last: the row's last frame (ELL's recipe; the model
    # learns to hold a word to the end of its clip, and into the next one in a stream). peak: the
    # first frame where the model is (nearly) most sure of the row's word; the word is suppressed
    # from hold_frames after that frame on (the model fires on the word and lets go)
    target_frame: str = "last"
    hold_frames: int = 6
    release_weight: float = 1.0
    # last: every frame of a background row (not only its last) learns "no word" (background or
    # unknown; after context from hold_frames on), weight release_weight. ELL's recipe teaches only
    # the last frame, so a clatter half a row before its end could fire a streaming detector
    # without ever costing the loss anything.
    quiet_background: bool = False
    # last: an unknown row (other words) also learns "no word" at the one frame where a word is most
    # likely (max-pooling, as for wake words), with this weight (0: off): a detector fires on any
    # frame, so a word that half-way sounds like the keyword ('hap-' of 'happy' for 'cat') must not,
    # though only its last frame is labelled.
    quiet_unknown: float = 0.0
    # knowledge distillation: a teacher model (any model the app loads) gives soft targets.
    # online: it labels every batch as trained (fresh views: SpecAugment, context, mixtures);
    # dataset: the soft targets stored by `kws dataset --teacher` (any teacher featurizer)
    teacher: str = ""
    teacher_featurizer: str = ""  # only when the teacher's features differ from the dataset's
    teacher_categories: str = ""  # when the teacher model does not carry its categories
    teacher_vad: bool = False  # keep the teacher's VAD (resets inside a row: usually unwanted)
    teacher_mode: str = "online"
    distill_weight: float = 0.7  # share of the teacher's term where a row also has a true label
    temperature: float = 2.0
    # share of each batch replaced by mixtures of two rows (the second 0-12 dB quieter), labelled
    # by the teacher alone (online mode; log-mel features)
    mix_prob: float = 0.0
    # warm start: the weights of a trained classifier (.kwm/.ell/.onnx, a stack of GRU or LSTM
    # layers + dense); its layers, sizes, gates and normalisation replace the architecture options,
    # output rows are matched to this dataset's categories by name (new classes start fresh)
    init: str = ""
    init_categories: str = ""  # when the init model does not carry its categories
    init_outputs: bool = True  # False: only the recurrent layers come from the init model, a new output layer
    device: str = "auto"
    seed: int = 0

    def __post_init__(self):
        def bad(name, why):
            raise ValueError(f"training option {name}={getattr(self, name)!r}: {why}")

        if self.architecture not in ARCHITECTURES:
            bad("architecture", f"choose one of {', '.join(ARCHITECTURES)}")
        if self.gate_activation not in GATE_ACTIVATIONS:
            bad("gate_activation", f"choose one of {', '.join(GATE_ACTIVATIONS)}")
        if self.gate_activation != "sigmoid" and self.architecture != "gru":
            bad("gate_activation", "hard-sigmoid gates are for the GRU architecture")
        if self.optimizer not in OPTIMIZERS:
            bad("optimizer", f"choose one of {', '.join(OPTIMIZERS)}")
        if self.scheduler not in SCHEDULERS:
            bad("scheduler", f"choose one of {', '.join(SCHEDULERS)}")
        if not 1 <= self.num_layers <= 3:
            bad("num_layers", "must be 1, 2 or 3")
        for name in ("hidden_size", "epochs", "batch_size", "tcn_channels", "bc_channels", "bc_blocks", "lr_step_size",
                     "context_rows"):
            if getattr(self, name) < 1:
                bad(name, "must be >= 1")
        if self.target_frame not in TARGET_FRAMES:
            bad("target_frame", f"choose one of {', '.join(TARGET_FRAMES)}")
        if self.hold_frames < 0:
            bad("hold_frames", "must be >= 0")
        if self.release_weight < 0:
            bad("release_weight", "must be >= 0")
        if self.quiet_unknown < 0:
            bad("quiet_unknown", "must be >= 0")
        if self.tcn_kernel < 2:
            bad("tcn_kernel", "must be >= 2")
        if not self.learning_rate > 0:
            bad("learning_rate", "must be > 0")
        if self.weight_decay < 0:
            bad("weight_decay", "must be >= 0")
        if not 0 <= self.dropout < 1:
            bad("dropout", "must be in [0, 1)")
        if not 0 <= self.context_prob <= 1:
            bad("context_prob", "must be in [0, 1]")
        if not 0 <= self.label_smoothing < 1:
            bad("label_smoothing", "must be in [0, 1)")
        if self.teacher_mode not in TEACHER_MODES:
            bad("teacher_mode", f"choose one of {', '.join(TEACHER_MODES)}")
        if not 0 <= self.distill_weight <= 1:
            bad("distill_weight", "must be in [0, 1]")
        if not 0.1 <= self.temperature <= 20:
            bad("temperature", "must be in [0.1, 20]")
        if not 0 <= self.mix_prob < 1:
            bad("mix_prob", "must be in [0, 1)")
        if self.mix_prob and not self.teacher:
            bad("mix_prob", "mixtures are labelled by a teacher: give --teacher too")
        if self.device not in ("auto", "cpu", "cuda") and not self.device.startswith("cuda:"):
            bad("device", "use auto, cpu or cuda")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> TrainConfig:
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})


ELL_RECIPE = TrainConfig()  # 2 x GRU 128, RMSprop lr 1e-3, weight decay 1e-5, 30 epochs, batch 128
