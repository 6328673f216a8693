"""
The processes of a torchrun run. A process that stops on an error must stop the others too: else they wait for it in
their next collective until NCCL's watchdog kills them, with tracebacks instead of the message. Also: stop requests
(Ctrl-C, SIGTERM, SIGHUP) that every process acts on at the same point, and each process's own GPU.
"""
import datetime
import importlib
import os
import signal
import socket

import torch
import torch.distributed as dist

from plumbing.cli import InputError, RunError, Stopped, _undo_at_exit, print0

# How long a collective waits for the slowest process before the run fails (torch's defaults: 10 minutes for NCCL, 30
# for gloo). The longest wait is for rank 0's checkpoint: gpt2-xl's, with AdamW's state, is 19 GB, 16 minutes to write
# at 20 MB/s (a slow network disk), and NCCL's 10 would kill the processes waiting for it. A first run's downloads
# take less (--init_from gpt2-xl: about 6 GB per machine). The price: a run that really hangs takes 30 minutes to fail.
COLLECTIVE_TIMEOUT = datetime.timedelta(minutes=30)


def import_what_holds_the_group():
    """Import, before init_process_group, what DDP imports later (torch._dynamo) and what that imports: among it
    torch.distributed.nn.functional, whose functions take group=group.WORLD as a default argument, evaluated once, as
    they are defined. Imported after the group exists, ten of them hold it to the end of the process:
    destroy_process_group() cannot free it, so gloo's threads (they are joined only when the group is freed) still run
    as the interpreter shuts down, and one that drops the last reference to a finished collective's tensors there
    must take the GIL of an interpreter being finalized, which ends the thread inside a C++ destructor: std::terminate,
    the process killed by SIGABRT ("terminate called without an active exception") after a run that went well.
    Imported first, those defaults are None (the default group at each call), and destroy_process_group() frees the
    group, which joins gloo's threads while Python is whole."""
    importlib.import_module("torch._dynamo")


def check_gloo_address():
    """Stop before the process group is made where a run spans machines and gloo would advertise a loopback address.
    gloo (it carries this run's CPU messages, and everything on CPU-only machines) binds to the address the host name
    resolves to, and with the common "127.0.1.1 hostname" line in /etc/hosts that is loopback: the other machines
    cannot connect, and the run hangs until the collective timeout. NCCL picks an interface itself; gloo is told with
    GLOO_SOCKET_IFNAME. A run whose rendezvous is at a loopback address is on one host, whatever its nodes."""
    world, local = int(os.environ.get("WORLD_SIZE", 1)), int(os.environ.get("LOCAL_WORLD_SIZE", 0) or 0)
    if not local or world <= local or os.environ.get("GLOO_SOCKET_IFNAME"):
        return
    if os.environ.get("MASTER_ADDR", "") in ("127.0.0.1", "localhost", "::1"):
        return
    try:
        address = socket.gethostbyname(socket.gethostname())
    except OSError:
        return
    if address.startswith("127."):
        raise InputError(f"{this_machine()}: this run spans machines, and this host's name resolves to {address}, a "
                         "loopback address, which gloo would give the other machines to connect to. Set "
                         "GLOO_SOCKET_IFNAME to the network interface the machines reach each other through, on every "
                         "machine (for example GLOO_SOCKET_IFNAME=eth0 torchrun ...; `ip -brief address` lists them), "
                         "or give the host name its network address in /etc/hosts")


def this_machine():
    """This process's machine, for messages: torchrun's node rank and the host name."""
    return f"node {os.environ.get('GROUP_RANK', '0')} ({socket.gethostname()})"


def stop_if_any_failed(error, ddp):
    """Every process passes None, or the RunError that stops it. If any process has one, every process stops with its
    message, naming the machines where it happened (each machine prints it once): none is left waiting in a
    collective for a process that stopped."""
    if ddp:
        errors = [None] * dist.get_world_size()
        dist.all_gather_object(errors, (error and str(error), this_machine()))
        failed = [(e, where) for e, where in errors if e]
        if failed:
            places = ", ".join(dict.fromkeys(where for _, where in failed))
            raise RunError(f"{failed[0][0]} [on {places}]", quiet=os.environ.get("LOCAL_RANK", "0") != "0")
    elif error:
        raise error


class StoppedBySignal(Stopped):
    """The run stopped by the signal `signum` after `step`, whose checkpoint is `path` (None: stopped before its first
    step); says how to go on."""

    def __init__(self, signum, step, path):
        kept = f"after step {step}; checkpoint {path}: continue with --resume auto" if path else \
            "before its first step: nothing to keep"
        super().__init__(signum, f"stopped by {signal.Signals(signum).name} {kept}")


class StopRequests:
    """From now until main() ends, a first Ctrl-C (SIGINT), SIGTERM (a scheduler's, or a spot instance's being
    reclaimed) or SIGHUP (the run's terminal or ssh session went away; print0 drops what it can no longer write) asks
    the run to stop. It is kept in `signum`, and the training loop asks every process together (`check`) after each
    micro-step and each val batch: once any process was asked, all stop there. The step they were in is dropped (it is
    done again on --resume), the checkpoint is written without a val eval, and the run exits. torchrun passes each of
    these signals to every worker and kills them 30 s later (its --shutdown-timeout): the stop must fit in that. Only a
    second Ctrl-C stops at once, without a checkpoint; a second SIGTERM or SIGHUP (under SLURM a worker can get the
    job step's SIGTERM and torchrun's) changes nothing."""

    SIGNALS = tuple(getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGHUP") if hasattr(signal, name))

    def __init__(self, ddp=False):
        self.signum = self.agreed = None  # agreed: the signal every process acts on, once a check found one
        self.ddp = ddp
        self.previous = {s: signal.signal(s, self.handle) for s in self.SIGNALS}
        _undo_at_exit.append(self.restore)

    def handle(self, signum, frame):
        if self.signum is None:
            self.signum = signum
            again = " (Ctrl-C again to stop at once)" if signum == signal.SIGINT else ""
            print0(f"{signal.Signals(signum).name}: stopping after this micro-step, with a checkpoint{again}")
        elif signum == signal.SIGINT:
            self.restore()
            signal.raise_signal(signum)  # with the handler of before: KeyboardInterrupt

    def check(self, error=None):
        """On every process together (under torchrun, a collective: all must call it at the same point): the signal
        that stops the run, or None. `error`: a RunError of this process (a line of log.txt that rank 0 could not
        write), with which every process stops if any has one. Once a check found a signal, it is `agreed`, and the
        next checks return it without asking the others (they found it at the same check)."""
        if self.agreed is None:
            self.agreed = asked_to_stop(self.signum, error, self.ddp)
        return self.agreed

    def restore(self):
        for signum, handler in self.previous.items():
            signal.signal(signum, handler)


def asked_to_stop(signum, error, ddp):
    """On every process together: if any process has a RunError (`error`), every process stops with it; else the
    signal that asks the run to stop (this process's, or the first of any process's), or None. Under torchrun one
    small all-reduce on the CPU (gloo) asks everyone, so that all stop at the same point."""
    failed, asked = error is not None, signum is not None
    if ddp:
        flags = torch.tensor([failed, asked], dtype=torch.int32)
        dist.all_reduce(flags, op=dist.ReduceOp.MAX)
        failed, asked = flags.tolist()
    if failed:
        stop_if_any_failed(error, ddp)
    return signal_of_any(signum, ddp) if asked else None


def signal_of_any(signum, ddp):
    """The signal that stops the run: this process's (or None), or under torchrun the first of any process's."""
    if ddp:
        everyone = [None] * dist.get_world_size()
        dist.all_gather_object(everyone, signum)
        signum = next(s for s in everyone if s is not None)
    return signum


def check_own_gpus(device):
    """Under torchrun on CUDA: stop every process if processes of one machine were given the same GPU (every process
    must call it). NCCL would stop them at their first collective with "Duplicate GPU detected"; this asks through
    gloo (see setup_distributed), which needs no GPU."""
    mine = (this_machine(), str(torch.cuda.get_device_properties(device).uuid))
    everyone = [None] * dist.get_world_size()
    dist.all_gather_object(everyone, mine)
    gpus = [uuid for machine, uuid in everyone if machine == mine[0]]  # the GPU of each process of this machine
    n = len(set(gpus))
    shared = InputError(f"{len(gpus)} processes on this machine share {n} GPU(s), and each needs one of its own: start "
                        f"at most {n} here (torchrun --nproc_per_node {n})") if n < len(gpus) else None
    stop_if_any_failed(shared, ddp=True)  # each machine says it once, naming itself


def run_or_stop_all(ddp, job, *args, where=True, **kwargs):
    """job(*args, **kwargs) on the processes where `where` is true (every process by default; each machine's local
    rank 0 for a download, rank 0 for a checkpoint) while the others wait, and its result (None where it did not
    run). If it fails on one process (a RunError, whose message says what to do), every process stops with that
    message: none is left waiting for it in the next collective. A single process (ddp False) gets the job's own
    error."""
    error = result = None
    try:
        if where:
            result = job(*args, **kwargs)
    except RunError as e:
        if not ddp:
            raise
        error = e
    stop_if_any_failed(error, ddp)
    return result


def stop_unless_same(value, problem, ddp):
    """Every process passes its `value` (say, the step and the sha256 of the checkpoint it read from its own disk).
    Where a machine's differs from rank 0's, every process stops with `problem`, naming those machines: each machine
    reads its own files, and a run whose machines read different ones would go on, silently wrong."""
    if ddp:
        everyone = [None] * dist.get_world_size()
        dist.all_gather_object(everyone, (value, this_machine()))
        differ = dict.fromkeys(where for other, where in everyone if other != everyone[0][0])
        if differ:
            raise RunError(f"{problem} [on {', '.join(differ)}]", quiet=os.environ.get("LOCAL_RANK", "0") != "0")


def gpu_of(local_rank, visible):
    """The GPU of the process with this local rank (torchrun's LOCAL_RANK), given how many GPUs it sees: its own of
    the machine's GPUs, or the only one it sees where the launcher gives each process one GPU (SLURM's
    --gpus-per-task=1 sets CUDA_VISIBLE_DEVICES per process, so every process's GPU is its cuda:0)."""
    if visible == 1:
        return "cuda:0"
    if local_rank >= visible:
        raise InputError(f"local rank {local_rank} has no GPU of its own: its process sees {visible} GPUs; start at "
                         f"most {visible} processes per machine (torchrun --nproc_per_node {visible})")
    return f"cuda:{local_rank}"
