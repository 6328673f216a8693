"""
A NaN or inf in the training step: the update is never made (it would poison the weights for good), and the run
stops, or with --skip_nonfinite logs the step as skipped; float16's overflows and its loss scale.
"""
import math

import torch

from plumbing.cli import RunError, print0


def may_step(optimizer, loss, norm):
    """Whether to call optimizer.step(): not if the loss or the gradient norm is NaN or inf, which would poison the
    weights for good. The fused AdamW kernel takes the check as a tensor (found_inf, as torch's GradScaler hands it
    over) and skips the update on the device itself: the answer is then yes, and the CPU need not wait for the GPU
    here. Other optimizers need the answer now. (Under float16 the gradient scaler makes the same check itself.)"""
    bad = ~(torch.isfinite(loss) & torch.isfinite(norm))
    if optimizer.defaults.get("fused"):
        optimizer.found_inf = bad.float()
        return True
    return not bad.item()


class NotFinite(RunError):
    """A loss, gradient norm or val loss (`what`, with its value) that is NaN or inf at `step`: the run stops."""

    def __init__(self, step, what, log_dir):
        super().__init__(f"step {step}: {what} is not finite, so the run stops here. The checkpoints in {log_dir}/ "
                         "are all from before it and untouched: continue from the last one with --resume auto (a lower "
                         "--max_lr may help), or pass --skip_nonfinite to skip such steps instead of stopping")


class ScaleCollapsed(RunError):
    """float16's loss scale fell below 1 at `step`: the gradients overflow at every step, and the run stops."""

    def __init__(self, step, scale, log_dir):
        super().__init__(f"step {step}: float16's loss scale fell to {scale:g}: the gradients overflow float16 at "
                         f"every step, so the run stops here. The checkpoints in {log_dir}/ are all from before it and "
                         "untouched: continue from the last one with --resume auto in --dtype bfloat16 (where the GPU "
                         "has it) or float32, or with a lower --max_lr; or pass --skip_nonfinite to skip such steps "
                         "instead of stopping")


def skipped_step(step, loss, norm, scale, skip_nonfinite, log_dir, log):
    """Whether the step just taken was skipped (loss, norm and float16's loss scale, or None: floats read after it).
    Under float16 a step whose gradients overflowed (a finite loss, an inf or NaN norm) was skipped by the scaler as
    designed, which lowered its scale: logged, and the run goes on. A scale fallen below 1 stops the run, unless
    --skip_nonfinite: then the steps the scaler applies are logged as any step. A NaN or inf loss or norm otherwise
    stops the run, or with --skip_nonfinite is logged as skipped. All processes see the same numbers."""
    if math.isfinite(loss):
        if scale is not None and scale < 1 and not skip_nonfinite:
            raise ScaleCollapsed(step, scale, log_dir)
        if math.isfinite(norm):  # the update was made (under float16 by the scaler, whatever its scale): logged
            return False
        if scale is not None:
            print0(f"step {step:5d} | loss {loss:.6f} | the gradients overflowed float16: step skipped by the scaler, "
                   f"loss scale now {scale:g} ({log.counts['overflow'] + 1} skipped in all)")
            log.write(f"{step} overflow {scale:g}")
            return True
    if not skip_nonfinite:
        raise NotFinite(step, f"loss {loss}, gradient norm {norm}", log_dir)
    print0(f"step {step:5d} | loss {loss} | norm {norm} | not finite: step skipped")
    log.write(f"{step} skipped {loss}")
    return True
