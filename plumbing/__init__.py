"""
What the scripts need besides the GPT-2 recipe, one module per concern. A learner can skip this folder:
train_gpt2.py reads as the recipe without it. Nothing here imports train_gpt2.py, hellaswag.py or fineweb.py.

    cli.py          the errors a command stops with, the one place its process ends, flags checked as parsed
    processes.py    the processes of a torchrun run: stopping together on an error, signals, each process's GPU
    files.py        files written whole, one run per folder, checked downloads, folders checked before any work
    datafiles.py    the training data: a text file or fineweb.py's shards, read as one stream of tokens; checked
                    and fetched before any work
    checkpoints.py  checkpoints: written, read, checked, and a run resumed from one
    runlog.py       log.txt: written line by line, cut back on a resume, an earlier run's files moved aside
    nonfinite.py    a NaN or inf in the training step: the update never made, and what the run says
    hardware.py     device, precision, compile, the micro-batch that fits a GPU, the GPUs' peak FLOP/s
    huggingface.py  HuggingFace in and out: a model that cannot be loaded, a model exported
    presets.py      the --model presets: GPT-2 and GPT-3 sizes with their recipes
"""
