"""The overfitted codec's two knobs: quality (the rate-distortion trade-off) and effort (steps and decoder size).

Quality q in 1..8 sets lambda in loss = MSE + lambda * bits per pixel (MSE of [0, 1] pixels):
log-spaced so that Kodak spans about 0.1 to 2 bpp. Effort names a preset of optimization steps and
decoder size; README gives each one's measured time and rate-distortion on Kodak.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .architecture import Architecture

# The encoder's recipe (schedule, initialization, parameter coding): bump it with any change that
# changes the files it makes and that an Effort's fields do not show, so benchmarks measure again
# instead of reading cached rows (they key rows by both and by the effort's repr, so a changed preset is
# measured again by itself).
RECIPE = 14

LAMBDAS: tuple[float, ...] = tuple(float(v) for v in np.geomspace(2e-2, 1.5e-4, 8))


@dataclass(frozen=True)
class Effort:
    steps: int
    arch: Architecture = field(default_factory=Architecture)
    learning_rate: float = 1e-2  # the latents' (Adam); cosine decay
    # The networks' (SOAP), the same cosine decay. 2e-2 and 3e-2 did no better on held-out fits
    # (0052: +2 to +38%, 0056: -1.6 to +8.8%; benchmarks/results/overfit_heldout/soap_settings_probe.log).
    network_learning_rate: float = 1e-2
    # Adam's moment decays (the latents'). Short memories, because a fit is short: with torch's
    # (0.9, 0.999) the second moment remembers the large gradients of the first steps for the
    # whole fit, so later steps shrink and the loss stalls half-way (held-out 0052 at q5: no
    # progress after step 120 of 220). (0.725, 0.9) cost 30-66% fewer bits at equal PSNR on the
    # held-out probe's three photos (README); lower first-moment decay for the networks alone did
    # worse.
    betas: tuple[float, float] = (0.725, 0.9)
    # The networks' optimizer, SOAP (fit.py): Cool-chic 5's moment decays for it, and a new
    # preconditioner eigenbasis every 10 steps. On the held-out probe's 0052 and 0056 (q2, q5, q8;
    # 300 steps) it ended 7 to 12% below Adam's loss in five fits of six (0056 q2: 2% above).
    network_betas: tuple[float, float] = (0.95, 0.95)
    precondition_frequency: int = 10
    # The networks' gradient norm is clipped to this (not the latents'); Cool-chic 5's 0.1 was
    # -4.3% (0052) and +1.9% (0056) on the same probe, within its noise.
    gradient_clip: float = 1.0
    # The soft phase: latents soft-rounded at a temperature, plus uniform noise of a width, each
    # falling linearly from the first value to the second. Wide noise early (1.5 rather than 1.0)
    # and a softer start (0.5 rather than 0.3) keep the rate's gradients informative while the
    # latents travel; on the held-out probe 11% fewer bits at equal PSNR on the Kodak-like photo
    # (README, recipe 6). Less noise (0.5 -> 0.15) cost 30% more.
    temperature: tuple[float, float] = (0.5, 0.1)
    noise: tuple[float, float] = (1.5, 0.45)
    hard_fraction: float = 0.1  # the last steps round for real, latents held (fit.py)
    # The upsampling filters' learning rate, as a fraction of the networks'. Left at the networks'
    # rate a long fit's filters can wander and stall it: held-out 0053 at q8 (330 steps) ended at
    # 35.3 dB under seed 0, 40.1 under seed 1, and 39.9 under seed 0 at a tenth. In fits of the
    # high effort's 2640 steps a tenth lowered the loss in 8 of 12 held-out fits, by 2.0% and 4.6%
    # (geometric means of two photos each; one fit -25%, the others -4.7 to +4.9%; README, recipe
    # 11); at the default effort it changed nothing beyond noise on six Kodak images, so only the
    # high effort takes it.
    upsampling_learning_rate_scale: float = 1.0
    # The fraction of the fit at the peak learning rate before the cosine decay begins (both
    # optimizers; fit.py): a cosine from the first step spends most of a short fit at rates well
    # below its peak. Holding it for the first 30% (recipe 12) lowered the whole-file loss (every bit
    # counted) of 11 of 12 held-out default-effort fits (geometric mean -6.0%, -2.4% without one fit
    # that stalled without it; 0.5: -7.0%, but +1.6 and +2.7% at q2) and of all 12 fast-effort fits
    # (-0.7 to -13.3%); README, recipe 12. Not the high effort: in its 2640-step fits holding 30%
    # raised the held-out loss in 6 fits of 6 (+22.6% and +1.1%, geometric means of two photos).
    learning_rate_hold: float = 0.0
    # After the last step, search the finest grid's roundings (latent_search.py; recipe 14). At the
    # default effort it lowered the whole-file loss of all 12 held-out fits (-0.79 to -3.71%, mean
    # -1.78%) for the time of about 7 of its steps; in the high effort's long fits -0.17 and -1.94%
    # for 0.2% of the time; at the fast effort 0 to -3.9% (nothing at q2) for 7% more time, which
    # more steps would buy too, so not there. Searching where the hard phase begins instead did
    # less (mean -1.52% on 6 fits). benchmarks/results/overfit_heldout/latent_search_probe.log
    latent_search: bool = False


# Steps sized by time on a 2-core CPU: 220 steps of 768x512 at 2 threads took 54-64 s with coding
# (`python benchmarks/overfit_speed.py`); overfit/kernels.py made a step 28% cheaper (0.239 ->
# 0.171 s in turns in one process, `python benchmarks/overfit_ab.py --against 62e0350`), so the
# same time held 300 (aimed at: fast ~20 s, default 60 s, high 10 minutes; in a slower session
# both 220 and 300 steps took 69-76 s, measured in turns: README "Efforts"). The synthesis in
# bfloat16 where the CPU has it (fit.bfloat16_synthesis, recipe 10) made a step 13% cheaper
# (0.187 -> 0.163 s, `python benchmarks/overfit_ab.py --against b7f406d`), so each effort takes
# 10% more steps: default 300 -> 330, fast 80 -> 88, high 2400 -> 2640 (2400 fitted 10 minutes
# at the slow session's 0.222-0.241 s a step; 3000 did not: 669-726 s). Steps, not seconds, so
# that the same image and settings give the same bytes on any machine as fast; `--time-budget`
# is the choice for seconds. Recipe 14 gives the default effort's last 7 steps to the latent search
# (their time: 5 to 8 steps on held-out crops), 330 -> 323.
# The high effort's entropy model also reads the five coarser grids beyond the parent
# (architecture.py, "ancestors"; tile version 2): in 2640-step fits of held-out 384x512 crops at q5
# the whole file's MSE + lambda x bits fell in 3 fits of 4 (-3.1%) (README, "The ARMs read the coarser
# grids"); a step costs ~8% more. Not the shorter efforts: at 330 steps the float probe was +1.3%.
EFFORTS: dict[str, Effort] = {
    "fast": Effort(steps=88, learning_rate_hold=0.3),
    "default": Effort(steps=323, learning_rate_hold=0.3, latent_search=True),  # 330 before the search (recipe 14)
    "high": Effort(steps=2640, upsampling_learning_rate_scale=0.1, arch=Architecture(ancestors=5),
                   latent_search=True),
}
DEFAULT_EFFORT = "default"
